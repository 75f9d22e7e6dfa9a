#!/usr/bin/env bash
# Allocations per echoed message, counted, for each echo server; fails when one is above its
# threshold in Benchmarks/alloc-thresholds.txt. Run by scripts/test.sh (CI).
#
#   Benchmarks/alloc-check.sh             # from any directory
#   SKIP_BUILD=1 Benchmarks/alloc-check.sh          # use the release binaries already built
#   THRESHOLDS=/dev/null Benchmarks/alloc-check.sh  # report only
#
# Each server runs pinned to CPU 0 (taskset, when there are 2 or more CPUs) under
# Benchmarks/bin/malloccount.so. loadgen (CPU 1) warms it up with one connection of WARMUP
# messages, then makes PAIRS pairs of runs on a fresh connection each: SMALL messages, then LARGE
# (32-byte text, one in flight). The server's allocation count is read before and after each run
# (SIGUSR2); everything a run costs besides its messages (connect, upgrade, close, teardown) is
# the same in both runs of a pair, so (count(LARGE) - count(SMALL)) / (LARGE - SMALL) is the cost
# of one echoed message. Prints each pair and the median; the median is what is checked.
#
# Servers: sockets-echo --api callback, --api channels, --api channels --executor event-loop
# (built here in release: swift build -c release --product sockets-echo)
# and nio-echo if Benchmarks/.build/release/nio-echo exists (this script never builds the
# benchmark package: run-echo.sh does). SERVERS="name=command;..." replaces the list (see
# Benchmarks/common-echo.sh); SOCKETS_ECHO_ARGS adds arguments to sockets-echo.
#
# Counts come from a multi-threaded server, so they vary a little between runs (which thread
# finds work already queued changes how often a task suspends); the thresholds leave a margin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin_dir="$here/bin"
# shellcheck source=Benchmarks/common-echo.sh
. "$here/common-echo.sh"

SMALL=${SMALL:-2000}
LARGE=${LARGE:-12000}
WARMUP=${WARMUP:-500}
PAIRS=${PAIRS:-3}
THRESHOLDS=${THRESHOLDS:-$here/alloc-thresholds.txt}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$root" && swift build -c release --product sockets-echo)
fi
"$here/build-tools.sh"

if [ -z "${SERVERS:-}" ]; then
    SERVERS="callback=$sockets_echo_bin --api callback${SOCKETS_ECHO_ARGS:+ $SOCKETS_ECHO_ARGS};channels=$sockets_echo_bin --api channels${SOCKETS_ECHO_ARGS:+ $SOCKETS_ECHO_ARGS};channels-el=$sockets_echo_bin --api channels --executor event-loop${SOCKETS_ECHO_ARGS:+ $SOCKETS_ECHO_ARGS}"
    if [ -x "$nio_echo_bin" ]; then SERVERS="$SERVERS;nio-echo=$nio_echo_bin"; fi
fi
parse_servers "$SERVERS"

pin_server=() pin_client=()
if [ "$(getconf _NPROCESSORS_ONLN)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

work=$(mktemp -d)
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Asks server $1 for its counts (SIGUSR2) and prints the allocation count once the line is in $2.
snapshot() {
    local pid=$1 file=$2 before i
    before=$(wc -l <"$file")
    kill -USR2 "$pid"
    for ((i = 0; i < 100; i++)); do
        [ "$(wc -l <"$file")" -gt "$before" ] && break
        sleep 0.02
    done
    tail -n 1 "$file" | sed -n 's/^allocs=\([0-9]*\) .*/\1/p'
}

# One run of $2 messages against port $1, then a pause so the server finishes its side of the
# close before the count is read.
echo_run() {
    "${pin_client[@]}" "$bin_dir/loadgen" --port "$1" --conns 1 --depth 1 --size 32 \
        --messages "$2" --timeout 120 --quiet >/dev/null
    sleep 0.3
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

failed=0
declare -A measured
echo "# allocations per echoed message (32 B text, depth 1, one connection): (count($LARGE) - count($SMALL)) / $((LARGE - SMALL)), $PAIRS pairs"
for i in "${!server_names[@]}"; do
    name=${server_names[$i]}
    port=$("$bin_dir/loadgen" --free-port)
    counts="$work/$name.counts"
    : >"$counts"
    # shellcheck disable=SC2086 # the command is words on purpose
    MALLOCCOUNT_FILE="$counts" LD_PRELOAD="$bin_dir/malloccount.so" \
        "${pin_server[@]}" ${server_cmds[$i]} --port "$port" >"$work/$name.log" 2>&1 &
    pid=$!
    started_pids+=("$pid")
    wait_port "$port"
    echo_run "$port" "$WARMUP"
    values=()
    for ((p = 0; p < PAIRS; p++)); do
        a0=$(snapshot "$pid" "$counts"); echo_run "$port" "$SMALL"; a1=$(snapshot "$pid" "$counts")
        b0=$(snapshot "$pid" "$counts"); echo_run "$port" "$LARGE"; b1=$(snapshot "$pid" "$counts")
        values+=("$(awk -v s=$((a1 - a0)) -v l=$((b1 - b0)) -v n=$((LARGE - SMALL)) 'BEGIN { printf "%.3f", (l - s) / n }')")
    done
    stop_pid "$pid"
    m=$(printf '%s\n' "${values[@]}" | median)
    measured[$name]=$m
    echo "$name allocs_per_message=$m pairs=${values[*]}"
done

if [ -s "$THRESHOLDS" ]; then
    while read -r name limit _; do
        case "$name" in '' | '#'*) continue ;; esac
        [ -n "${measured[$name]:-}" ] || continue
        if awk -v m="${measured[$name]}" -v t="$limit" 'BEGIN { exit !(m > t) }'; then
            echo "FAIL: $name: ${measured[$name]} allocations per echoed message, threshold $limit ($THRESHOLDS)" >&2
            failed=1
        else
            echo "ok: $name: ${measured[$name]} <= $limit"
        fi
    done <"$THRESHOLDS"
fi
exit "$failed"
