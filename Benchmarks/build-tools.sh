#!/bin/sh
# Builds the C tools of the echo benchmarks into Benchmarks/bin/ (git-ignored):
#   loadgen          the load generator (Benchmarks/loadgen.c) with the engine compiled in;
#   malloccount.so   the LD_PRELOAD allocation counter (Benchmarks/malloccount.c).
# -O2 and no -march, as Benchmarks/run-c.sh: the engine picks its SIMD kernels at run time.
#
#   Benchmarks/build-tools.sh     # from any directory; CC=gcc for another compiler
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cc=${CC:-clang}
mkdir -p "$here/bin"

# The engine's C files: Sources/CWebSocket/*.c, plus kernels/*.c once the kernels live there.
set -- "$root"/Sources/CWebSocket/*.c
if [ -d "$root/Sources/CWebSocket/kernels" ]; then set -- "$@" "$root"/Sources/CWebSocket/kernels/*.c; fi
"$cc" -O2 -std=c11 -I"$root/include" -I"$root/Sources/CWebSocket" "$@" "$here/loadgen.c" \
    -o "$here/bin/loadgen" -lz
"$cc" -O2 -std=c11 -shared -fPIC "$here/malloccount.c" -o "$here/bin/malloccount.so"
