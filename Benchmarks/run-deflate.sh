#!/bin/sh
# Builds and runs the permessage-deflate benchmark (Benchmarks/deflate.c) against every engine
# source file and the system zlib.
#
#   Benchmarks/run-deflate.sh           # from the repo root or any directory; 60 rounds
#   Benchmarks/run-deflate.sh 200       # more rounds (best of N per case)
#   CC=gcc Benchmarks/run-deflate.sh    # another compiler
#
# -O2 and no -march, as run-c.sh. The binary goes to Benchmarks/bin/ (git-ignored). Output
# format: see the comment at the top of deflate.c.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cc=${CC:-clang}
bin="$here/bin"
mkdir -p "$bin"

"$cc" -O2 -std=c11 -I"$root/include" -I"$root/Sources/CWebSocket" \
    "$root"/Sources/CWebSocket/*.c "$root"/Sources/CWebSocket/kernels/*.c "$here/deflate.c" -o "$bin/deflate" -lz

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo none)
echo "# date=$(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$commit cpu=\"$cpu\" cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo ?)"
echo "# loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)\" (1/5/15 min, before the run)"
echo "# cc=\"$("$cc" --version 2>/dev/null | head -n 1)\" flags=\"-O2 -std=c11\""
exec "$bin/deflate" "$@"
