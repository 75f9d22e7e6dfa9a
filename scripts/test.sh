#!/usr/bin/env bash
# Runs every test (what CI runs):
#   1. the Swift suites: the C engine through its API, the NIO layer, the router, and interop with
#      independent clients (Python's websockets, raw sockets) on 127.0.0.1;
#   1b. the DocC documentation (scripts/docs.sh);
#   2. the C side (scripts/test-c.sh): standalone build, exported-symbol check, C tests plain and
#      under ASan/UBSan/LSan, the example through pkg-config, coverage of the engine by the fuzz
#      corpus and the C tests (fails below its targets), each fuzz target for FUZZ_SECONDS (30
#      here; scripts/test-c.sh alone defaults to 60) after replaying its regressions;
#   3. allocations per echoed message of sockets-echo (release build), against the ceilings in
#      Benchmarks/alloc-thresholds.txt (Benchmarks/alloc-check.sh, counted with an LD_PRELOAD
#      malloc counter; about 10 s once sockets-echo is built);
#   4. the Swift suites again under AddressSanitizer (SKIP_ASAN=1 skips this slow step). Leak
#      detection is off there: Foundation's Process (used to start the Python client) leaks by
#      itself; the engine's leaks are checked by LeakSanitizer in step 2 and by the fuzzers.
# Installs what is missing first (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# The Python clients of the interop tests run from the virtual environment deps.sh made.
export PATH="$PWD/.venv/bin:$PATH"

swift build --build-tests
# Suites run one at a time: several measure timing and socket buffers, and this runs on 2 cores.
swift test --skip-build --no-parallel

# The DocC archives of SocketsCore and Sockets, offline (about 15 s once built): a DocC warning
# or a public symbol without a doc comment fails the run (see scripts/docs.sh).
scripts/docs.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/test-c.sh

# Counts are deterministic, unlike times, so CI gates on them (as SwiftNIO's allocation tests do).
Benchmarks/alloc-check.sh

if [ "${SKIP_ASAN:-0}" != 1 ]; then
    ASAN_OPTIONS=detect_leaks=0 swift test --no-parallel --sanitize=address --scratch-path .build-asan
fi
echo "all test steps passed"
