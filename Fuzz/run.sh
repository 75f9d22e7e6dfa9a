#!/usr/bin/env bash
# Builds the libFuzzer targets (make fuzz) and runs each for a bounded time, as CI does.
#
#   Fuzz/run.sh [SECONDS]        # default 60 s per target; from any directory
#
# Environment:
#   FUZZ_TARGETS="fuzz_parse fuzz_writer"   run only these (default: every Fuzz/fuzz_*.c)
#   FUZZ_KEEP=DIR                           keep each grown working corpus in DIR/<target>/
#   FUZZ_FLAGS="..."                        extra libFuzzer flags (e.g. -max_len=16384)
#
# For each target:
#   1. replays Fuzz/regressions/<target>/ with -runs=0 (every saved crash must now pass);
#   2. copies the committed corpus Fuzz/corpus/<target>/ into a temporary working corpus (the
#      committed one is never grown by CI) and fuzzes it for SECONDS with Fuzz/ws.dict.
# Any crash, leak, timeout or sanitizer report fails the run (non-zero exit); the reproducer is
# kept and its path printed: copy it into Fuzz/regressions/<target>/ once the bug is understood.
# Prints per target: seconds, total executions, executions per second; then a summary line.
set -uo pipefail

secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

if ! make -s fuzz; then
    echo "fuzz: build failed (libFuzzer needs clang with compiler-rt: FUZZ_CC=/path/to/clang)" >&2
    exit 1
fi

targets=${FUZZ_TARGETS:-$(for f in Fuzz/fuzz_*.c; do basename "$f" .c; done)}
work=$(mktemp -d "${TMPDIR:-/tmp}/cws-fuzz.XXXXXX")
keep_artifacts=0
cleanup() { if [ "$keep_artifacts" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# A report in the log fails the run even if an exit code were lost.
report_re='ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|invariant failed|SUMMARY: '

passed=0
failed=0
rows=()
for t in $targets; do
    bin="Fuzz/bin/$t"
    log="$work/$t.log"
    art="$work/artifacts/$t"
    mkdir -p "$art" "$work/corpus/$t"
    ok=1

    # 1. regressions
    reg="Fuzz/regressions/$t"
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null | grep -v '^\.gitkeep$')" ]; then
        if ! "$bin" -runs=0 -artifact_prefix="$art/regression-" "$reg" >"$work/$t.regressions.log" 2>&1 ||
            grep -Eq "$report_re" "$work/$t.regressions.log"; then
            echo "FAIL $t: a regression input in $reg still fails:" >&2
            grep -E "$report_re|Running: " "$work/$t.regressions.log" | tail -n 8 >&2
            ok=0
        fi
    fi

    # 2. bounded fuzzing on a copy of the committed corpus
    if [ -d "Fuzz/corpus/$t" ]; then cp -R "Fuzz/corpus/$t/." "$work/corpus/$t/"; fi
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    "$bin" "$work/corpus/$t" -max_total_time="$secs" -print_final_stats=1 -dict=Fuzz/ws.dict \
        -timeout=20 -rss_limit_mb=2560 -artifact_prefix="$art/" ${FUZZ_FLAGS:-} >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    ran=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    files=$(ls "$work/corpus/$t" | wc -l)
    if [ "$rc" -ne 0 ] || grep -Eq "$report_re" "$log"; then
        echo "FAIL $t (exit $rc):" >&2
        grep -E "$report_re|invariant|^    #[0-9]+ " "$log" | head -n 20 >&2
        for a in "$art"/*; do [ -e "$a" ] && echo "  reproducer: $a ($(wc -c <"$a") bytes)" >&2; done
        ok=0
    fi
    if [ -n "${FUZZ_KEEP:-}" ]; then mkdir -p "$FUZZ_KEEP/$t" && cp -R "$work/corpus/$t/." "$FUZZ_KEEP/$t/"; fi
    if [ "$ok" = 1 ]; then passed=$((passed + 1)); status=ok; else failed=$((failed + 1)); status=FAIL; keep_artifacts=1; fi
    row=$(printf '%-16s %-4s %6ss %12s execs %9s exec/s  corpus %5s files' "$t" "$status" "$ran" "${execs:-?}" "${rate:-?}" "$files")
    echo "$row"
    rows+=("$row")
done

echo "---- fuzz summary (${secs}s per target, $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') cores) ----"
printf '%s\n' "${rows[@]}"
if [ "$keep_artifacts" = 1 ]; then echo "logs and reproducers kept in $work" >&2; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
