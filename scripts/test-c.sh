#!/usr/bin/env bash
# The C side of the test suite: the standalone build, its exported symbols, the C tests plain and
# under ASan + UBSan + LSan, the example (also through an installed copy and pkg-config), the
# coverage of the engine by the committed fuzz corpus and the C tests (Fuzz/coverage.sh: fails
# below 99% of lines, 92% of branches, and 97% / 90% for cws_deflate.c and cws_extension.c), and
# every fuzz target for a bounded time after replaying its regressions.
#
#   scripts/test-c.sh                  # from any directory
#   FUZZ_SECONDS=10 scripts/test-c.sh  # shorter fuzzing (default 60 s per target)
#
# Needs clang with compiler-rt (libFuzzer, sanitizers) and zlib's headers. Fuzzing alone takes
# FUZZ_SECONDS (default 60 s) times the number of targets (every Fuzz/fuzz_*.c: 7 when this was
# written), plus the builds and tests before it. Exit status 0 only if every step passed; the last
# line is "N passed, M failed" counting steps.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...
    local name=$1
    shift
    echo "==== $name: $*"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "==== $name: ok ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "==== $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

step "build" make -s lib
step "check-symbols" make -s check-symbols
step "test (plain build, guard pages)" make -s test
step "test-sanitize (ASan, UBSan, LSan)" make -s test-sanitize
step "example" make -s example
step "check-install (pkg-config)" make -s check-install
step "coverage (corpus >= 99% of lines)" Fuzz/coverage.sh
step "fuzz (${FUZZ_SECONDS:-60} s per target)" Fuzz/run.sh "${FUZZ_SECONDS:-60}"

if [ "$failed" -gt 0 ]; then echo "failed steps: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
