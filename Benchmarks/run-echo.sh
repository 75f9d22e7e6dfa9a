#!/usr/bin/env bash
# End-to-end echo benchmark: sockets-echo against an echo server on SwiftNIO's NIOWebSocket
# (Benchmarks/Sources/NIOEcho), same load generator (Benchmarks/loadgen.c), same run.
#
#   Benchmarks/run-echo.sh               # builds everything, 3 rounds, 2 s warm-up + 8 s measured
#   Benchmarks/run-echo.sh --quick       # 1 round, 0.5 s + 1.5 s, 1,000 idle connections (a test)
#   ROUNDS=5 MEASURE=10 Benchmarks/run-echo.sh
#
# Workloads (issue #10), each against a freshly started server:
#   W1  100 connections x 32-byte text x 1 in flight per connection      msg/s
#   W2  100 connections x 32-byte text x 16 in flight per connection     msg/s
#   W3  100 connections x 1 MiB binary x 1 in flight per connection      MB/s (10^6, one direction)
#   W4  10,000 idle upgraded connections: growth of the server's VmRSS (/proc/PID/status) from
#       before to after opening them, divided by the connections      bytes per connection
#       ("before" is after a warm-up of 100 connections opened, held 0.5 s and closed, so one-off
#       start-up costs such as thread pools are not charged to the connections)
# Each server runs pinned to CPU 0 and loadgen to CPU 1 (taskset); the servers take turns within
# each round, so both see the same machine conditions. The table gives, per workload and server,
# the median over the rounds and the range (min-max), and the ratio to the baseline server
# (BASELINE, default nio-echo): the median of the per-round ratios and their range. For W4 a ratio
# above 1 means more memory per connection than the baseline; for W1-W3, faster.
# On a shared machine the wall-clock rates depend on how much of CPU 0 the server got, so the table
# also gives what the server did per CPU-second of its own (user + system time of all its threads
# from /proc/PID/stat, over the whole loadgen run, against every echo of that run) and the share of
# CPU 0 it had: that ratio is the steadier one when other jobs compete for the cores.
# loadgen checks every echo byte for byte; a run with errors is marked "!" in the table.
#
# Settings (environment): ROUNDS (3), WARMUP (2), MEASURE (8) seconds, CONNS (100),
# IDLE_CONNS (10000), W1_ARGS/W2_ARGS/W3_ARGS (loadgen arguments of each workload), WORKLOADS
# ("W1 W2 W3 W4"), SERVERS ("name=command;...": see Benchmarks/common-echo.sh; each command gets
# --port N), SOCKETS_ECHO_ARGS (extra sockets-echo arguments), BASELINE, SKIP_BUILD=1,
# OUT (folder for the raw results; default a new folder under /tmp).
# Output: the table on stdout (markdown); raw RESULT lines in $OUT/raw.tsv; the table as TSV in
# $OUT/table.tsv (Benchmarks/plot-echo.py draws it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin_dir="$here/bin"
# shellcheck source=Benchmarks/common-echo.sh
. "$here/common-echo.sh"

command_line="Benchmarks/run-echo.sh${*:+ $*}"
if [ "${1:-}" = --quick ]; then
    : "${ROUNDS:=1}" "${WARMUP:=0.5}" "${MEASURE:=1.5}" "${IDLE_CONNS:=1000}"
    shift
fi
[ $# -eq 0 ] || { echo "usage: Benchmarks/run-echo.sh [--quick] (settings: see the comment at the top)" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
MEASURE=${MEASURE:-8}
CONNS=${CONNS:-100}
IDLE_CONNS=${IDLE_CONNS:-10000}
W1_ARGS=${W1_ARGS:---conns $CONNS --depth 1 --size 32}
W2_ARGS=${W2_ARGS:---conns $CONNS --depth 16 --size 32}
W3_ARGS=${W3_ARGS:---conns $CONNS --depth 1 --size 1048576 --binary}
WORKLOADS=${WORKLOADS:-W1 W2 W3 W4}
BASELINE=${BASELINE:-nio-echo}
OUT=${OUT:-$(mktemp -d /tmp/run-echo.XXXXXX)}
mkdir -p "$OUT"

# 10,000 connections need 10,000 descriptors in the server and as many in loadgen.
want_fds=$((IDLE_CONNS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    echo "ulimit -n is $(ulimit -n); W4 needs $want_fds (raise the hard limit or lower IDLE_CONNS)" >&2
    exit 1
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "# building (release): sockets-echo, nio-echo, loadgen" >&2
    (cd "$root" && nice swift build -c release --product sockets-echo >&2)
    (cd "$root" && nice swift build -c release --package-path Benchmarks --product nio-echo >&2)
fi
"$here/build-tools.sh"

if [ -z "${SERVERS:-}" ]; then
    SERVERS="callback=$sockets_echo_bin --api callback${SOCKETS_ECHO_ARGS:+ $SOCKETS_ECHO_ARGS};channels=$sockets_echo_bin --api channels${SOCKETS_ECHO_ARGS:+ $SOCKETS_ECHO_ARGS};nio-echo=$nio_echo_bin"
fi
parse_servers "$SERVERS"

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
    echo "# command: $command_line (ROUNDS=$ROUNDS WARMUP=$WARMUP MEASURE=$MEASURE CONNS=$CONNS IDLE_CONNS=$IDLE_CONNS)"
    echo "# date=$(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$commit cpu=\"$cpu\" cores=$(getconf _NPROCESSORS_ONLN)"
    echo "# loadavg=\"$(cut -d' ' -f1-3 /proc/loadavg)\" (1/5/15 min, before the run)"
    echo "# $(swift --version 2>/dev/null | head -n 1)"
    for i in "${!server_names[@]}"; do echo "# server ${server_names[$i]}: ${server_cmds[$i]}"; done
} | tee "$OUT/header.txt"
printf 'round\tworkload\tserver\tvalue\tp50_us\tp99_us\terrors\tcpu_s\twall_s\tper_cpu_s\n' >"$OUT/raw.tsv"

server_pid=""
start_server() { # $1 = index into server_names; sets server_pid and port
    port=$("$bin_dir/loadgen" --free-port)
    # shellcheck disable=SC2086 # the command is words on purpose
    "${pin_server[@]}" ${server_cmds[$1]} --port "$port" >>"$OUT/${server_names[$1]}.log" 2>&1 &
    server_pid=$!
    started_pids+=("$server_pid")
    wait_port "$port"
}

# CPU time (user + system, all threads) process $1 has used so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# W4 against the server on $port (pid $server_pid): sets value (bytes per connection) and errors.
idle_run() {
    "${pin_client[@]}" "$bin_dir/loadgen" --port "$port" --idle --conns 100 --hold 0.5 --quiet >/dev/null || true
    sleep 0.5
    local before after out="$OUT/idle.out" lg i
    before=$(rss_kib "$server_pid")
    : >"$out" # empty now: the redirection below happens in the child, maybe after the first grep
    "${pin_client[@]}" "$bin_dir/loadgen" --port "$port" --idle --conns "$IDLE_CONNS" --hold 120 \
        --quiet >"$out" 2>>"$OUT/loadgen.log" &
    lg=$!
    started_pids+=("$lg")
    for ((i = 0; i < 1200; i++)); do
        grep -qs '^HOLDING' "$out" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1 # let the server finish setting up the last connections
    after=$(rss_kib "$server_pid")
    kill -TERM "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    local line open # errors and value are the results: not local
    line=$(grep '^RESULT' "$out" || true)
    open=$(result_field "$line" open)
    errors=$(result_field "$line" errors)
    if [ -z "$open" ] || [ "$open" = 0 ]; then value=nan errors=1; return; fi
    [ "$open" = "$IDLE_CONNS" ] || errors=$((errors + IDLE_CONNS - open))
    value=$(((after - before) * 1024 / open))
}

for ((r = 1; r <= ROUNDS; r++)); do
    for w in $WORKLOADS; do
        for i in "${!server_names[@]}"; do
            name=${server_names[$i]}
            start_server "$i"
            case $w in
            W4)
                idle_run
                p50=- p99=- cpu_s=- wall_s=- per_cpu=-
                ;;
            W1 | W2 | W3)
                args_var="${w}_ARGS"
                c0=$(cpu_ticks "$server_pid")
                t0=$(date +%s.%N)
                # shellcheck disable=SC2086 # the arguments are words on purpose
                line=$("${pin_client[@]}" "$bin_dir/loadgen" --port "$port" ${!args_var} \
                    --warmup "$WARMUP" --seconds "$MEASURE" 2>>"$OUT/loadgen.log" | grep '^RESULT' || true)
                t1=$(date +%s.%N)
                c1=$(cpu_ticks "$server_pid")
                if [ "$w" = W3 ]; then value=$(result_field "$line" mb_per_s); else value=$(result_field "$line" msg_per_s); fi
                p50=$(result_field "$line" p50_us)
                p99=$(result_field "$line" p99_us)
                errors=$(result_field "$line" errors)
                total=$(result_field "$line" total_msgs)
                size=$(result_field "$line" size)
                [ -n "$value" ] || { value=nan errors=1 p50=- p99=- total=0 size=0; }
                # Server CPU seconds over the whole loadgen run, and what they bought: every echo
                # (warm-up included) per CPU-second; for W3 in MB (10^6 bytes) per CPU-second.
                cpu_s=$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }')
                wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
                per_cpu=$(awk -v n="$total" -v s="$size" -v c="$cpu_s" -v w="$w" \
                    'BEGIN { if (c <= 0) print "nan"; else if (w == "W3") printf "%.1f", n * s / 1e6 / c; else printf "%.0f", n / c }')
                ;;
            *) echo "unknown workload $w" >&2; exit 2 ;;
            esac
            stop_pid "$server_pid"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$name" "$value" "$p50" "$p99" \
                "$errors" "$cpu_s" "$wall_s" "$per_cpu" | tee -a "$OUT/raw.tsv" >&2
        done
    done
done

python3 - "$OUT" "$BASELINE" <<'EOF'
import csv, statistics, sys
out, baseline = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out}/raw.tsv"), delimiter="\t"))
units = {"W1": "msg/s", "W2": "msg/s", "W3": "MB/s", "W4": "B/conn"}
cpu_units = {"W1": "msg", "W2": "msg", "W3": "MB"}
names = {"W1": "W1 32 B x1", "W2": "W2 32 B x16", "W3": "W3 1 MiB x1", "W4": "W4 idle"}
servers = list(dict.fromkeys(r["server"] for r in rows))
workloads = list(dict.fromkeys(r["workload"] for r in rows))
nan = float("nan")
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return nan
def fmt(v, w):
    if v != v: return "n/a"
    return f"{v:,.1f}" if w == "W3" else f"{v:,.0f}"
def ratios(w, s, key):
    """Per-round ratios of server s to the baseline in the same round."""
    base = {r["round"]: num(r[key]) for r in rows if r["workload"] == w and r["server"] == baseline}
    res = []
    for r in rows:
        if r["workload"] == w and r["server"] == s:
            b, v = base.get(r["round"], nan), num(r[key])
            if b == b and v == v and b != 0: res.append(v / b)
    return res
def rtxt(s, rs):
    if s == baseline: return "1"
    return f"{statistics.median(rs):.2f}x ({min(rs):.2f}-{max(rs):.2f})" if rs else "n/a"
def med(xs): return statistics.median(xs) if xs else nan
table = []
print()
print(f"| workload | server | median | range | ratio to {baseline} (median, range) | per server CPU-second (median) | ratio | server CPU share | p99 latency |")
print("|---|---|---|---|---|---|---|---|---|")
for w in workloads:
    for s in servers:
        rs = [r for r in rows if r["workload"] == w and r["server"] == s]
        good = [v for v in (num(r["value"]) for r in rs) if v == v]
        if not good: continue
        rv, rc = ratios(w, s, "value"), ratios(w, s, "per_cpu_s")
        pc = [v for v in (num(r["per_cpu_s"]) for r in rs) if v == v]
        share = [num(r["cpu_s"]) / num(r["wall_s"]) for r in rs if num(r["wall_s"]) > 0]
        p99 = [v for v in (num(r["p99_us"]) for r in rs) if v == v]
        errs = sum(int(r["errors"] or 0) for r in rs)
        print(f"| {names.get(w, w)} | {s}{' !' if errs else ''} | {fmt(med(good), w)} {units.get(w, '')} "
              f"| {fmt(min(good), w)}-{fmt(max(good), w)} | {rtxt(s, rv)} "
              f"| {fmt(med(pc), w) + ' ' + cpu_units[w] if pc else '-'} "
              f"| {rtxt(s, rc) if pc else '-'} "
              f"| {f'{med(share):.0%}' if share else '-'} "
              f"| {f'{med(p99) / 1000:,.1f} ms' if p99 else '-'} |")
        table.append((w, s, med(good), min(good), max(good),
                      med(rv), min(rv, default=nan), max(rv, default=nan), med(pc),
                      med(rc), min(rc, default=nan), max(rc, default=nan), errs))
with open(f"{out}/table.tsv", "w") as f:
    f.write("workload\tserver\tmedian\tmin\tmax\tratio\tratio_min\tratio_max\tper_cpu_s\tcpu_ratio\tcpu_ratio_min\tcpu_ratio_max\terrors\n")
    for t in table:
        f.write("\t".join(str(x) for x in t) + "\n")
print()
print(f"Rounds per cell: {len(set(r['round'] for r in rows))}. Ratios: median (and range) of the per-round ratios. "
      f"Per server CPU-second: echoes of the whole loadgen run (warm-up included) / the server's user+system "
      f"CPU time over it. Server CPU share: that CPU time / the run's wall time (100% = all of CPU 0). "
      f"Errors marked '!'. Raw results: {out}/raw.tsv")
EOF
