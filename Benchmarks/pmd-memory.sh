#!/usr/bin/env bash
# Server memory per connection for every permessage-deflate mode, measured, not computed: for
# each mode and round a fresh release `sockets-echo --compression MODE`, 2,000 Python
# `websockets` clients with their default permessage-deflate offer (Benchmarks/pmd_memory.py),
# the server's VmRSS growth divided by the connections after the handshake and after a mixed load
# (100 B to 64 KiB, text and binary, six messages per connection), and the growth of glibc's
# bytes in live allocations (mallinfo2, read through the preloaded Benchmarks/mallinfo-shim.c) at
# the same points. Prints one line per run and a Markdown table: medians of the rounds with their
# ranges, each mode's difference from `off`, and the zlib memory its name stands for.
#
#   Benchmarks/pmd-memory.sh                       # every mode, 3 rounds (~25 min on 2 busy cores)
#   ROUNDS=5 CONNECTIONS=2000 Benchmarks/pmd-memory.sh
#   MODES="off shared dedicated:kb22:kb9" Benchmarks/pmd-memory.sh
#   SKIP_BUILD=1 Benchmarks/pmd-memory.sh          # use the existing .build/release/sockets-echo
#   SOCKETS_ECHO_ARGS="--max-read-size 8192" Benchmarks/pmd-memory.sh   # extra sockets-echo arguments
#
# A mode is off, on, shared, small, or dedicated:COMPRESSOR:DECOMPRESSOR (names as in
# CompressionSettings.Compressor and .Decompressor). Needs `.venv` (scripts/deps.sh) and 2 x
# CONNECTIONS + some file descriptors: the script raises its soft limit (`ulimit -n`) to 8192.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=Benchmarks/common-echo.sh
. "$root/Benchmarks/common-echo.sh" # wait_port
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-2000}
PORT=${PORT:-19301}
MODES=${MODES:-"off shared on dedicated:kb10:kb8 dedicated:kb14:kb9 dedicated:kb22:kb11 dedicated:kb38:kb11 dedicated:kb38:kb15 dedicated:kb70:kb23 dedicated:kb134:kb39 dedicated:kb262:kb39"}
python=$root/.venv/bin/python3
[ -x "$python" ] || { echo "no $python: run scripts/deps.sh" >&2; exit 1; }
ulimit -n 8192 || { echo "cannot raise the open-file limit to 8192 (ulimit -Hn: $(ulimit -Hn))" >&2; exit 1; }
if [ -z "${SKIP_BUILD:-}" ]; then nice swift build -c release --product sockets-echo >&2; fi
bin=$root/.build/release/sockets-echo
out=$(mktemp -d)
server=""
cc -shared -fPIC -O2 "$root/Benchmarks/mallinfo-shim.c" -o "$out/mallinfo-shim.so"
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$out"' EXIT

header="${SOCKETS_ECHO_ARGS:+sockets-echo $SOCKETS_ECHO_ARGS, }commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources || echo ' (Sources modified)'), $(nproc) CPUs, $(ldd --version | head -1 | sed 's/.* //') glibc, $CONNECTIONS connections, $ROUNDS rounds"
echo "$header" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for mode in $MODES; do
        IFS=: read -r name comp decomp <<<"$mode"
        args=(--port "$PORT" --compression "$name")
        [ -n "${comp:-}" ] && args+=(--compressor "$comp")
        [ -n "${decomp:-}" ] && args+=(--decompressor "$decomp")
        # shellcheck disable=SC2206 # SOCKETS_ECHO_ARGS is split into words on purpose
        args+=(${SOCKETS_ECHO_ARGS:-})
        info="$out/mallinfo.$round.${mode//:/-}"
        LD_PRELOAD="$out/mallinfo-shim.so" MALLINFO_OUT="$info" "$bin" "${args[@]}" 2>"$out/server.err" &
        server=$!
        wait_port "$PORT"
        if result=$(timeout 600 "$python" "$root/Benchmarks/pmd_memory.py" "ws://127.0.0.1:$PORT/" "$server" \
            --connections "$CONNECTIONS" --mallinfo "$info"); then
            echo "$mode $result" | tee -a "$out/runs" >&2
        else
            echo "$mode failed (round $round): $result" >&2
        fi
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    done
done
echo "$header"
"$python" - "$out/runs" <<'PY'
import json, statistics, sys
runs, order = {}, []
for line in open(sys.argv[1]):
    mode, js = line.split(" ", 1)
    if mode not in runs:
        runs[mode] = []
        order.append(mode)
    runs[mode].append(json.loads(js))
# The zlib allocation each mode's name stands for (CompressionSettings.Compressor/.Decompressor,
# counted by Benchmarks/zlib-sizes.c on zlib 1.2.13); `on` is window 15 both ways.
comp = {"kb10": 10048, "kb14": 14144, "kb22": 22336, "kb38": 38720, "kb70": 71488, "kb134": 137024, "kb262": 268096}
decomp = {"kb8": 8184, "kb9": 9208, "kb11": 11256, "kb15": 15352, "kb23": 23544, "kb39": 39928}
def named(mode):
    parts = mode.split(":")
    if parts[0] == "dedicated": return comp[parts[1]] + decomp[parts[2]]
    if parts[0] == "on": return comp["kb262"] + decomp["kb39"]
    if parts[0] == "shared": return 0
    return None
def kib(b): return b / 1024
def cell(xs): return f"{kib(statistics.median(xs)):.1f} ({kib(min(xs)):.1f}-{kib(max(xs)):.1f})"
def med(mode, key): return statistics.median(r[key] for r in runs[mode])
print("| mode | agreed | RSS after handshake | RSS after load | RSS minus `off` | in use after load | in use minus `off` | named | echoes equal |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in order:
    rs = runs[mode]
    def col(key): return cell([r[key] for r in rs])
    def diff(key):
        if "off" not in runs: return "-"
        xs = [r[key] - med("off", key) for r in rs]
        return f"{kib(statistics.median(xs)):+.1f} ({kib(min(xs)):+.1f} to {kib(max(xs)):+.1f})"
    n = named(mode)
    eq = "/".join(str(r["echoes_equal"]) for r in rs) + f" of {rs[0]['echoes_expected']}"
    print(f"| `{mode}` | {rs[0]['agreed'] or '-'} | {col('per_conn_handshake_bytes')} | {col('per_conn_load_bytes')} | "
          f"{diff('per_conn_load_bytes')} | {col('per_conn_in_use_load_bytes')} | {diff('per_conn_in_use_load_bytes')} | "
          f"{'-' if n is None else f'{kib(n):.1f}'} | {eq} |")
print()
print("KiB per connection: medians of the rounds (range). RSS: the server's VmRSS growth from before the first")
print("connection; in use: glibc's bytes in live allocations (mallinfo2). Differences from `off` take each run")
print("against the median of `off`.")
PY
