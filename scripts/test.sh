#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/deps.sh), then the Swift suites — the C
# engine through its API, the NIO layer, and interop with independent clients on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build --build-tests
swift test --skip-build
