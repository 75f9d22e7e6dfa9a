#!/usr/bin/env bash
# Compressed echo end to end (issue #17, item 5): sockets-echo with permessage-deflate against the
# Hummingbird 2 echo with hummingbird-websocket's perMessageDeflate (Benchmarks/Sources/HBEcho) and
# Python websockets' echo with its compression (Benchmarks/python-echo.py), same load generator
# (Benchmarks/loadgen.c --json --deflate), same run.
#
#   Benchmarks/run-echo-deflate.sh             # builds everything, 3 rounds, 2 s warm-up + 8 s measured
#   Benchmarks/run-echo-deflate.sh --quick     # 1 round, 0.5 s + 1.5 s, 200 connections held (a test)
#   ROUNDS=5 Benchmarks/run-echo-deflate.sh
#
# Two takeover modes, each with its own three servers:
#   shared   no context takeover: the server resets its compressor after every message and states
#            client_no_context_takeover too, so the client resets as well.
#              sockets-echo --compression shared  (one deflater and a pool of inflaters per thread)
#              hb-echo --no-context-takeover --level 1
#              python-echo.py --no-context-takeover  (websockets' defaults plus both parameters)
#   context  both sides keep their context (the client offers no parameter but client_max_window_bits).
#              sockets-echo --compression on      (a dedicated deflater and inflater per connection)
#              hb-echo --level 1
#              python-echo.py                     (websockets' default: serve(compression="deflate"))
# zlib levels: sockets-echo and loadgen use level 1 (their default), hb-echo is given level 1 so
# that the Swift servers do the same zlib work (perMessageDeflate's own default is zlib's 6);
# Python websockets runs its defaults: zlib's level (6), window 12 bits both ways, memLevel 5.
# Workloads, each against a freshly started server:
#   T  CONNS (100) connections x SIZE (1,024)-byte JSON text x 1 in flight per connection,
#      every message compressed both ways (loadgen --json --deflate: a JSON object per message with
#      a counter and records of words and numbers drawn at random, ~46% of its size after deflate
#      alone, ~29% with context); msg/s and MB/s (10^6 bytes of uncompressed payload, one way).
#   M  MEM_CONNS (2,000) connections, each echoing MEM_MESSAGES (16) such messages one at a time
#      and then held open: growth of the server's VmRSS from before to after opening them, divided
#      by the connections (bytes per connection, as Benchmarks/run-echo.sh's W4; "before" is after
#      a warm-up of 100 such connections, held 0.5 s and closed, so one-off costs such as thread
#      pools and the per-thread shared deflater are not charged to the connections).
# Each server runs pinned to CPU 0 and loadgen to CPU 1 (taskset); the servers take turns within
# each round. The table gives, per mode and server, the median over the rounds and the range, and
# the ratio of sockets (SUBJECT) to that server: the median of the per-round ratios and their range.
# As in run-echo.sh it also gives what the server did per CPU-second of its own (user + system time
# of all its threads over the whole loadgen run, against every echo of that run) and the share of
# CPU 0 it had: the steadier ratio when other jobs compete for the cores; and the load generator's
# share of CPU 1 (it compresses and inflates every message too: near 100%, it was the limit). loadgen checks every echo
# byte for byte and fails the connection if the server declines permessage-deflate; a run with
# errors is marked "!".
#
# Settings (environment): ROUNDS (3), WARMUP (2), MEASURE (8) seconds, CONNS (100), SIZE (1024),
# MEM_CONNS (2000), MEM_MESSAGES (16), MODES ("shared context"), SERVERS_SHARED and
# SERVERS_CONTEXT ("name=command;...", see Benchmarks/common-echo.sh; each command gets --port N),
# SUBJECT (sockets), PYTHON (the .venv's python3, which scripts/deps.sh sets up), SKIP_BUILD=1,
# OUT (folder for the raw results; default a new folder under /tmp).
# Output: the table and the targets of issue #17 on stdout (markdown); raw lines in $OUT/raw.tsv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin_dir="$here/bin"
# shellcheck source=Benchmarks/common-echo.sh
. "$here/common-echo.sh"

command_line="Benchmarks/run-echo-deflate.sh${*:+ $*}"
if [ "${1:-}" = --quick ]; then
    : "${ROUNDS:=1}" "${WARMUP:=0.5}" "${MEASURE:=1.5}" "${MEM_CONNS:=200}"
    shift
fi
[ $# -eq 0 ] || { echo "usage: Benchmarks/run-echo-deflate.sh [--quick] (settings: see the comment at the top)" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
MEASURE=${MEASURE:-8}
CONNS=${CONNS:-100}
SIZE=${SIZE:-1024}
MEM_CONNS=${MEM_CONNS:-2000}
MEM_MESSAGES=${MEM_MESSAGES:-16}
MODES=${MODES:-shared context}
SUBJECT=${SUBJECT:-sockets}
PYTHON=${PYTHON:-$root/.venv/bin/python3}
OUT=${OUT:-$(mktemp -d /tmp/run-echo-deflate.XXXXXX)}
mkdir -p "$OUT"
hb_echo_bin="$here/.build/release/hb-echo"
py_echo="$PYTHON $here/python-echo.py"
: "${SERVERS_SHARED:=sockets=$sockets_echo_bin --compression shared;hummingbird=$hb_echo_bin --no-context-takeover --level 1;python=$py_echo --no-context-takeover}"
: "${SERVERS_CONTEXT:=sockets=$sockets_echo_bin --compression on;hummingbird=$hb_echo_bin --level 1;python=$py_echo}"

want_fds=$((MEM_CONNS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    echo "ulimit -n is $(ulimit -n); M needs $want_fds (raise the hard limit or lower MEM_CONNS)" >&2
    exit 1
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "# building (release): sockets-echo, hb-echo, loadgen" >&2
    (cd "$root" && nice swift build -c release --product sockets-echo >&2)
    (cd "$root" && nice swift build -c release --package-path Benchmarks --product hb-echo >&2)
fi
"$here/build-tools.sh"
if ! "$PYTHON" -c 'import websockets.asyncio.server' 2>/dev/null; then
    echo "no Python websockets (>= 13) at $PYTHON: run scripts/deps.sh, or set PYTHON" >&2
    exit 1
fi

pin_server=() pin_client=()
if [ "$(getconf _NPROCESSORS_ONLN)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0) pin_client=(taskset -c 1)
else
    echo "# warning: fewer than 2 CPUs or no taskset: server and loadgen are not pinned" >&2
fi

trap 'stop_all' EXIT
trap 'exit 130' INT TERM

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
commit=$(git -C "$root" describe --always --dirty 2>/dev/null || echo none)
{
    echo "# command: $command_line (ROUNDS=$ROUNDS WARMUP=$WARMUP MEASURE=$MEASURE CONNS=$CONNS SIZE=$SIZE MEM_CONNS=$MEM_CONNS MEM_MESSAGES=$MEM_MESSAGES)"
    echo "# date=$(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$commit cpu=\"$cpu\" cores=$(getconf _NPROCESSORS_ONLN)"
    echo "# loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\" (1/5/15 min, before the run)"
    echo "# $(swift --version 2>/dev/null | head -n 1); $("$PYTHON" --version 2>&1), websockets $("$PYTHON" -c 'import websockets; print(websockets.__version__)')"
    for mode in $MODES; do
        var="SERVERS_${mode^^}"
        parse_servers "${!var}"
        for i in "${!server_names[@]}"; do echo "# $mode: ${server_names[$i]}: ${server_cmds[$i]}"; done
    done
} | tee "$OUT/header.txt"
printf 'round\tmode\tworkload\tserver\tvalue\tmb_per_s\tp99_us\terrors\tcpu_s\twall_s\tper_cpu_s\tloadgen_cpu_s\n' >"$OUT/raw.tsv"

server_pid=""
start_server() { # $1 = index into server_names; sets server_pid and port
    port=$("$bin_dir/loadgen" --free-port)
    # shellcheck disable=SC2086 # the command is words on purpose
    "${pin_server[@]}" ${server_cmds[$1]} --port "$port" >>"$OUT/${server_names[$1]}.log" 2>&1 &
    server_pid=$!
    started_pids+=("$server_pid")
    wait_port "$port"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
msg_args=(--size "$SIZE" --json --deflate)

# T against the server on $port: sets value, mb, p99, errors, cpu_s, wall_s, per_cpu, lg_cpu.
throughput_run() {
    local c0 c1 t0 t1 line total
    c0=$(cpu_ticks "$server_pid")
    t0=$(date +%s.%N)
    line=$("${pin_client[@]}" "$bin_dir/loadgen" --port "$port" --conns "$CONNS" --depth 1 "${msg_args[@]}" \
        --warmup "$WARMUP" --seconds "$MEASURE" 2>>"$OUT/loadgen.log" | grep '^RESULT' || true)
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$server_pid")
    value=$(result_field "$line" msg_per_s)
    mb=$(result_field "$line" mb_per_s)
    p99=$(result_field "$line" p99_us)
    errors=$(result_field "$line" errors)
    total=$(result_field "$line" total_msgs)
    lg_cpu=$(result_field "$line" cpu_s)
    [ -n "$value" ] || { value=nan mb=nan p99=- errors=1 total=0 lg_cpu=-; }
    cpu_s=$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }')
    wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    per_cpu=$(awk -v n="$total" -v c="$cpu_s" 'BEGIN { if (c <= 0) print "nan"; else printf "%.0f", n / c }')
}

# M against the server on $port (pid $server_pid): sets value (bytes per connection) and errors.
memory_run() {
    "${pin_client[@]}" "$bin_dir/loadgen" --port "$port" --idle --conns 100 --messages "$MEM_MESSAGES" \
        "${msg_args[@]}" --hold 0.5 --quiet >/dev/null 2>>"$OUT/loadgen.log" || true
    sleep 0.5
    local before after out="$OUT/mem.out" lg i line open
    before=$(rss_kib "$server_pid")
    : >"$out" # empty now: the redirection below happens in the child, maybe after the first grep
    "${pin_client[@]}" "$bin_dir/loadgen" --port "$port" --idle --conns "$MEM_CONNS" --messages "$MEM_MESSAGES" \
        "${msg_args[@]}" --hold 120 --quiet >"$out" 2>>"$OUT/loadgen.log" &
    lg=$!
    started_pids+=("$lg")
    for ((i = 0; i < 1200; i++)); do
        grep -qs '^HOLDING' "$out" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1 # let the server settle
    after=$(rss_kib "$server_pid")
    kill -TERM "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    line=$(grep '^RESULT' "$out" || true)
    open=$(result_field "$line" open)
    errors=$(result_field "$line" errors)
    if [ -z "$open" ] || [ "$open" = 0 ]; then value=nan errors=1; return; fi
    [ "$open" = "$MEM_CONNS" ] || errors=$((errors + MEM_CONNS - open))
    value=$(((after - before) * 1024 / open))
}

for ((r = 1; r <= ROUNDS; r++)); do
    for mode in $MODES; do
        var="SERVERS_${mode^^}"
        parse_servers "${!var}"
        for w in T M; do
            for i in "${!server_names[@]}"; do
                name=${server_names[$i]}
                start_server "$i"
                if [ "$w" = T ]; then
                    throughput_run
                else
                    memory_run
                    mb=- p99=- cpu_s=- wall_s=- per_cpu=- lg_cpu=-
                fi
                stop_pid "$server_pid"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$w" "$name" "$value" "$mb" \
                    "$p99" "$errors" "$cpu_s" "$wall_s" "$per_cpu" "$lg_cpu" | tee -a "$OUT/raw.tsv" >&2
            done
        done
    done
done
echo "# loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\" (after the run)" | tee -a "$OUT/header.txt"

python3 - "$OUT" "$SUBJECT" <<'EOF'
import csv, statistics, sys
out, subject = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out}/raw.tsv"), delimiter="\t"))
nan = float("nan")
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return nan
def med(xs): return statistics.median(xs) if xs else nan
def cell(mode, w, s): return [r for r in rows if r["mode"] == mode and r["workload"] == w and r["server"] == s]
def vals(rs, key): return [v for v in (num(r[key]) for r in rs) if v == v]
def ratios(mode, w, s, key):
    """Per-round ratios subject / s in the same round."""
    mine = {r["round"]: num(r[key]) for r in cell(mode, w, subject)}
    res = []
    for r in cell(mode, w, s):
        a, b = mine.get(r["round"], nan), num(r[key])
        if a == a and b == b and b != 0: res.append(a / b)
    return res
def rtxt(s, rs, digits=2):
    if s == subject: return "1"
    return f"{med(rs):.{digits}f}x ({min(rs):.{digits}f}-{max(rs):.{digits}f})" if rs else "n/a"
def rng(xs, f="{:,.0f}"): return f"{f.format(min(xs))}-{f.format(max(xs))}" if xs else "n/a"
modes = list(dict.fromkeys(r["mode"] for r in rows))
servers = {m: list(dict.fromkeys(r["server"] for r in rows if r["mode"] == m)) for m in modes}
print()
print(f"| mode | server | msg/s (median, range) | MB/s | {subject} / server msg/s | msg per server CPU-second | {subject} / server per CPU-s "
      f"| server CPU share | loadgen CPU share | p99 | bytes per connection (median, range) | {subject} / server bytes |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in modes:
    for s in servers[m]:
        t, mm = cell(m, "T", s), cell(m, "M", s)
        v, mb, pc, p99, mem = vals(t, "value"), vals(t, "mb_per_s"), vals(t, "per_cpu_s"), vals(t, "p99_us"), vals(mm, "value")
        share = [num(r["cpu_s"]) / num(r["wall_s"]) for r in t if num(r["wall_s"]) > 0]
        lg_share = [x for x in (num(r["loadgen_cpu_s"]) / num(r["wall_s"]) for r in t if num(r["wall_s"]) > 0) if x == x]
        errs = sum(int(r["errors"] or 0) for r in t + mm)
        print(f"| {m} | {s}{' !' if errs else ''} | {med(v):,.0f} ({rng(v)}) | {med(mb):.1f} | {rtxt(s, ratios(m, 'T', s, 'value'))} "
              f"| {med(pc):,.0f} | {rtxt(s, ratios(m, 'T', s, 'per_cpu_s'))} | {med(share):.0%} | {med(lg_share):.0%} | {med(p99) / 1000:,.1f} ms "
              f"| {med(mem):,.0f} ({rng(mem)}) | {rtxt(s, ratios(m, 'M', s, 'value'), 3)} |")
print()
print(f"Rounds: {len(set(r['round'] for r in rows))}. Ratios: median (and range) of the per-round ratios of {subject} to the server "
      f"in the same round. Per server CPU-second: echoes of the whole loadgen run (warm-up included) / the server's "
      f"user+system CPU time over it. Server CPU share: that CPU time / the run's wall time (100% = all of CPU 0); "
      f"loadgen CPU share: the same for the load generator on CPU 1 (near 100%: the generator, not the server, was the limit). "
      f"Errors marked '!'. Raw results: {out}/raw.tsv")
print()
print("Targets (issue #17 item 5), on the median of the per-round ratios (wall-clock msg/s; per CPU-second in brackets):")
def verdict(rs, ok):
    if not rs: return "n/a"
    if all(ok(x) for x in rs): return "met in every round"
    return "met (median), not in every round" if ok(med(rs)) else "NOT met"
for m in modes:
    for peer, target in (("hummingbird", 3.0), ("python", 2.5)):
        if peer not in servers[m]: continue
        rs, rc = ratios(m, "T", peer, "value"), ratios(m, "T", peer, "per_cpu_s")
        print(f"- {m}: msg/s >= {target}x {peer}: {rtxt(peer, rs)}: {verdict(rs, lambda x: x >= target)} "
              f"[{rtxt(peer, rc)}: {verdict(rc, lambda x: x >= target)}]")
    if m == "shared" and "hummingbird" in servers[m]:
        rs = ratios(m, "M", "hummingbird", "value")
        print(f"- {m}: bytes per connection <= 1/10 of hummingbird's: {rtxt('hummingbird', rs, 3)}: {verdict(rs, lambda x: x <= 0.1)}")
EOF
