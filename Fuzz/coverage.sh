#!/usr/bin/env bash
# Line coverage of the engine (Sources/CWebSocket/*.[ch] and kernels/*.[ch]) reached by the fuzz corpora, with clang's
# source-based coverage (-fprofile-instr-generate -fcoverage-mapping) and llvm-profdata/llvm-cov
# from the same toolchain as clang.
#
#   Fuzz/coverage.sh [EXTRA_CORPUS_ROOT]
#
# Runs every target's committed corpus and regressions (plus EXTRA_CORPUS_ROOT/<target>/ when
# given, e.g. a FUZZ_KEEP directory from Fuzz/run.sh) once (-runs=0), then prints the line coverage
# each target reaches alone, and the per-file table of all targets together.
# Environment: COV_MIN=95 fails (exit 1) when the total line coverage is below it;
#              COV_SHOW=1 lists the lines no input reached.
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

make -s fuzz-cov || { echo "coverage: build failed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cws-cov.XXXXXX")
trap 'rm -rf "$work"' EXIT
sources=(Sources/CWebSocket/*.c Sources/CWebSocket/kernels/*.c Sources/CWebSocket/*.h Sources/CWebSocket/kernels/*.h)
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
    line=$("$cov" report -instr-profile="$work/$t.profdata" "$bin" "${sources[@]}" | awk '$1 == "TOTAL" { print $(NF-5), $(NF-4), $(NF-3) }')
    # llvm-cov report columns end with: Lines, Missed Lines, Cover, Branches, Missed Branches, Cover
    set -- $line
    printf '%-16s %5s of %5s engine lines (%s)  %s inputs\n' "$t" "$(($1 - $2))" "$1" "$3" \
        "$(find "${dirs[@]}" -type f ! -name .gitkeep | wc -l)"
    objects+=(-object "$bin")
done
"$profdata" merge -sparse "$work"/*.profraw -o "$work/all.profdata"
echo
echo "---- all targets together: Sources/CWebSocket ----"
"$cov" report -instr-profile="$work/all.profdata" "${objects[@]:1}" "${sources[@]}" |
    awk '$1 == "Filename" { printf "%-20s %8s %8s %8s\n", "file", "lines", "missed", "cover" }
         $1 == "TOTAL" || $1 ~ /\.[ch]$/ { printf "%-20s %8s %8s %8s\n", $1, $(NF-5), $(NF-4), $(NF-3) }'
total=$("$cov" report -instr-profile="$work/all.profdata" "${objects[@]:1}" "${sources[@]}" | awk '$1 == "TOTAL" { sub("%", "", $(NF-3)); print $(NF-3) }')
if [ "${COV_SHOW:-0}" = 1 ]; then
    echo
    echo "---- lines no input reached ----"
    "$cov" show -instr-profile="$work/all.profdata" "${objects[@]:1}" "${sources[@]}" -show-line-counts \
        -use-color=false | awk '/^\/.*\.[ch]:$/ { file = $0 } /^ *[0-9]+\| *0\|/ { print file " " $0 }'
fi
echo "line coverage of the engine: $total%"
if [ -n "${COV_MIN:-}" ] && awk -v t="$total" -v m="$COV_MIN" 'BEGIN { exit !(t < m) }'; then
    echo "coverage: below COV_MIN=$COV_MIN%" >&2
    exit 1
fi
