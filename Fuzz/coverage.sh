#!/usr/bin/env bash
# Line and branch coverage of the engine (Sources/CWebSocket/*.[ch] and kernels/*.[ch]) reached by
# the fuzz corpora, and by the corpora plus the C tests, with clang's source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping) and llvm-profdata/llvm-cov from the same toolchain
# as clang.
#
#   Fuzz/coverage.sh [EXTRA_CORPUS_ROOT]
#
# Runs every target's committed corpus and regressions (plus EXTRA_CORPUS_ROOT/<target>/ when
# given, e.g. a FUZZ_KEEP directory from Fuzz/run.sh) once (-runs=0), and the C tests
# (Tests/C, built with coverage: make test-cov); prints what each target reaches alone, then the
# per-file tables of the corpus alone and of the corpus with the C tests.
# Exits 1 below any target (issues 15 and 17):
#   COV_MIN=99          lines, corpus alone (0 turns the check off)
#   COV_BRANCH_MIN=92   branches, corpus + C tests
#   COV_FILES="cws_deflate.c:97:90 cws_extension.c:97:90"
#                       per file, corpus + C tests: FILE:LINES:BRANCHES
# COV_SHOW=1 also lists the lines neither the corpus nor the C tests reached.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
extra=${1:-}

cc=${FUZZ_CC:-clang}
tooldir=$(dirname "$(command -v "$cc")")
profdata=$tooldir/llvm-profdata
cov=$tooldir/llvm-cov
# The profile format must match the compiler: prefer the tools next to clang (/opt/swift/usr/bin
# here; the llvm-14 ones in /usr/bin cannot read clang 21's profiles).
[ -x "$profdata" ] || profdata=$(command -v llvm-profdata)
[ -x "$cov" ] || cov=$(command -v llvm-cov)

make -s fuzz-cov test-cov || { echo "coverage: build failed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cws-cov.XXXXXX")
trap 'rm -rf "$work"' EXIT
sources=(Sources/CWebSocket/*.c Sources/CWebSocket/kernels/*.c Sources/CWebSocket/*.h Sources/CWebSocket/kernels/*.h)

# summary NAME PROFDATA OBJECT...: one line, lines and branches reached
summary() {
    local name=$1 prof=$2
    shift 2
    local line
    line=$("$cov" report -instr-profile="$prof" "$@" "${sources[@]}" |
        awk '$1 == "TOTAL" { print $(NF-5), $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF }')
    # llvm-cov report columns end with: Lines, Missed Lines, Cover, Branches, Missed Branches, Cover
    set -- $line
    printf '%-18s %5s of %5s lines (%7s)  %4s of %4s branches (%7s)' "$name" "$(($1 - $2))" "$1" "$3" "$(($4 - $5))" "$4" "$6"
}

# table PROFDATA OBJECT...: the per-file report into $work/report.txt, printed
table() {
    local prof=$1
    shift
    "$cov" report -instr-profile="$prof" "$@" "${sources[@]}" >"$work/report.txt"
    awk '$1 == "Filename" { printf "%-26s %7s %7s %8s %9s %7s %8s\n", "file", "lines", "missed", "cover", "branches", "missed", "cover" }
         $1 == "TOTAL" || $1 ~ /\.[ch]$/ { printf "%-26s %7s %7s %8s %9s %7s %8s\n", $1, $(NF-5), $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF }' "$work/report.txt"
}
# cover FILE COLUMN: a percentage from $work/report.txt (COLUMN 3: lines, 0: branches; from the end)
cover() { awk -v f="$1" -v c="$2" '$1 == f { v = $(NF - c); sub("%", "", v); print v }' "$work/report.txt"; }

objects=()
for f in Fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    bin=Fuzz/bin/cov/$t
    dirs=()
    for d in "Fuzz/corpus/$t" "Fuzz/regressions/$t" ${extra:+"$extra/$t"}; do
        [ -d "$d" ] && dirs+=("$d")
    done
    [ ${#dirs[@]} -gt 0 ] || continue
    # -runs=0: execute each input once, no mutation
    LLVM_PROFILE_FILE="$work/$t.profraw" "$bin" -runs=0 "${dirs[@]}" >"$work/$t.log" 2>&1 ||
        echo "coverage: $t exited with an error (see a crash in the corpus?)" >&2
    "$profdata" merge -sparse "$work/$t.profraw" -o "$work/$t.profdata"
    summary "$t" "$work/$t.profdata" "$bin"
    printf '  %4s inputs\n' "$(find "${dirs[@]}" -type f ! -name .gitkeep | wc -l)"
    objects+=(-object "$bin")
done
tests=Fuzz/bin/cov/test_engine
rc=0
LLVM_PROFILE_FILE="$work/tests.profraw.c" "$tests" >"$work/tests.log" 2>&1 ||
    { echo "coverage: the C tests failed:" >&2; grep -E "FAIL|check failed" "$work/tests.log" | head -n 5 >&2; rc=1; }
"$profdata" merge -sparse "$work/tests.profraw.c" -o "$work/tests.profdata"
summary "C tests" "$work/tests.profdata" "$tests"
echo

"$profdata" merge -sparse "$work"/*.profraw -o "$work/corpus.profdata"
echo "---- the fuzz corpora together ----"
table "$work/corpus.profdata" "${objects[@]:1}"
lines=$(cover TOTAL 3)
corpus_branches=$(cover TOTAL 0)

"$profdata" merge -sparse "$work"/*.profraw "$work/tests.profraw.c" -o "$work/all.profdata"
echo
echo "---- the fuzz corpora and the C tests ----"
table "$work/all.profdata" "${objects[@]:1}" -object "$tests"
all_lines=$(cover TOTAL 3)
branches=$(cover TOTAL 0)
if [ "${COV_SHOW:-0}" = 1 ]; then
    echo
    echo "---- lines neither reached ----"
    "$cov" show -instr-profile="$work/all.profdata" "${objects[@]:1}" -object "$tests" "${sources[@]}" \
        -show-line-counts -use-color=false | awk '/^\/.*\.[ch]:$/ { file = $0 } /^ *[0-9]+\| *0\|/ { print file " " $0 }'
fi
echo
echo "coverage of the engine: corpus lines $lines%, branches $corpus_branches%; corpus + C tests lines $all_lines%, branches $branches%"
below() { awk -v t="$1" -v m="$2" 'BEGIN { exit !(t == "" || t < m) }'; }
if below "$lines" "${COV_MIN:-99}"; then
    echo "coverage: corpus lines $lines% below COV_MIN=${COV_MIN:-99}%" >&2
    rc=1
fi
if below "$branches" "${COV_BRANCH_MIN:-92}"; then
    echo "coverage: branches $branches% below COV_BRANCH_MIN=${COV_BRANCH_MIN:-92}%" >&2
    rc=1
fi
for spec in ${COV_FILES-cws_deflate.c:97:90 cws_extension.c:97:90}; do
    IFS=: read -r file lmin bmin <<<"$spec"
    l=$(cover "$file" 3)
    b=$(cover "$file" 0)
    if below "$l" "$lmin" || below "$b" "$bmin"; then
        echo "coverage: $file lines ${l:-?}%, branches ${b:-?}%: below $lmin% / $bmin%" >&2
        rc=1
    fi
done
exit $rc
