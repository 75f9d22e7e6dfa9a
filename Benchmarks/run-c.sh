#!/bin/sh
# Builds and runs the C benchmark (Benchmarks/bench.c) against every engine source file.
#
#   Benchmarks/run-c.sh            # from the repo root, or from any directory
#   CC=gcc Benchmarks/run-c.sh     # another compiler
#
# -O2 and no -march on purpose: the library picks its SIMD kernels at run time, as in a user's
# build. The binary goes to Benchmarks/bin/ (git-ignored). Output format: see bench.c.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cc=${CC:-clang}
bin="$here/bin"
mkdir -p "$bin"

# Link zlib only when an engine file uses it (permessage-deflate), so a machine without zlib can
# still run the benchmark of a build that does not need it.
libs=""
if grep -qs 'zlib\.h' "$root"/Sources/CWebSocket/*.[ch] "$root"/Sources/CWebSocket/kernels/*.[ch]; then libs="-lz"; fi

# shellcheck disable=SC2086 # $libs is empty or one flag
"$cc" -O2 -std=c11 -I"$root/include" -I"$root/Sources/CWebSocket" \
    "$root"/Sources/CWebSocket/*.c "$root"/Sources/CWebSocket/kernels/*.c "$here/bench.c" -o "$bin/bench" $libs

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo none)
echo "# date=$(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$commit cpu=\"$cpu\" cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo ?)"
# Other processes compete for the same cores and memory bandwidth: record how busy the box was.
echo "# loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)\" (1/5/15 min, before the run)"
echo "# cc=\"$("$cc" --version 2>/dev/null | head -n 1)\" flags=\"-O2 -std=c11\""
exec "$bin/bench" "$@"
