#!/bin/sh
# Fan-out of the hub: deliveries per second and per server CPU-second for a room of 200 clients,
# within one instance (the in-process hub: the baseline) and across two instances sharing the room
# through the PostgreSQL backplane, measured in the same run, with the ratios.
#
#   Benchmarks/hub-fanout.sh [--messages N] [--clients N]      (defaults: 5 messages, 200 clients)
#
# Builds sockets-chat in release mode, makes a throwaway PostgreSQL cluster
# (Tests/Interop/pg_cluster.py: initdb + pg_ctl on 127.0.0.1, removed at the end), then runs
# Tests/Interop/chat_load.py in burst mode three times:
#   in-process     one sockets-chat, no backplane (200 clients in 2 client processes);
#   backplane x1   one sockets-chat with --backplane (the cost of relaying when nobody listens);
#   backplane x2   two sockets-chat with --backplane, 100 clients on each.
# Every client sends N messages at once; every message must reach each of the 199 others exactly
# once (a run that does not is reported as failed). Deliveries/s is wall time from the burst to
# the last delivery; CPU is the sockets-chat processes' user+system time (PostgreSQL's own CPU is
# not counted). The clients share the machine's cores with the servers, so compare the ratios,
# not the absolute numbers, across machines. Needs python3 with websockets, and PostgreSQL.
set -eu
cd "$(dirname "$0")/.."
MESSAGES=5
CLIENTS=200
while [ $# -gt 0 ]; do
    case "$1" in
        --messages) MESSAGES="$2"; shift 2 ;;
        --clients) CLIENTS="$2"; shift 2 ;;
        *) echo "usage: $0 [--messages N] [--clients N]" >&2; exit 2 ;;
    esac
done
swift build -c release --product sockets-chat >&2
BIN="$(swift build -c release --show-bin-path)/sockets-chat"
PG="$(python3 Tests/Interop/pg_cluster.py start)"
PGDIR="$(printf '%s' "$PG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dir"])')"
URL="$(printf '%s' "$PG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')"
trap 'python3 Tests/Interop/pg_cluster.py stop "$PGDIR"' EXIT
OUT="$(mktemp -d)"
# Every client gets (clients - 1) x messages at once: the outbox must hold a whole burst, or the
# hub rightly drops clients that fall that far behind (1008) and the run measures that instead.
QUEUE=$((CLIENTS * MESSAGES + 100))
run() {
    python3 Tests/Interop/chat_load.py --server "$BIN" --server-arg=--quiet --server-arg=--client-queue \
        --server-arg="$QUEUE" --clients "$CLIENTS" --messages "$MESSAGES" --processes 2 --timeout 120 "$@"
}
run > "$OUT/inprocess.json"
run --backplane "$URL" > "$OUT/one.json"
run --instances 2 --backplane "$URL" > "$OUT/two.json"
python3 - "$OUT" "$MESSAGES" "$CLIENTS" <<'PY'
import json, sys
out, messages, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [("in-process", "inprocess"), ("backplane x1", "one"), ("backplane x2", "two")]
rows = {}
for label, f in runs:
    r = json.load(open(f"{out}/{f}.json"))
    if "exception" in r:
        print(f"{label}: failed: {r['exception']}")
        sys.exit(1)
    ok = r["received"] == r["expected"] and r["missing"] == 0 and r["duplicates"] == 0
    cpu = r.get("server_cpu_seconds") or float("nan")
    rows[label] = (r["deliveries_per_second"], r["expected"] / cpu if cpu else float("nan"), ok, r["expected"], r["burst_seconds"], cpu)
    if not ok:
        print(f"{label}: {r['received']}/{r['expected']} delivered, {r['duplicates']} duplicates; clients closed early: {r.get('closed_early')}")
base = rows["in-process"]
print(f"room of {clients}, {messages} messages per client at once ({base[3]} deliveries per run)")
print(f"{'':14} {'deliveries/s':>13} {'ratio':>6} {'deliveries/CPU-s':>17} {'ratio':>6}  exactly once")
for label, _ in runs:
    d, c, ok, n, secs, cpu = rows[label]
    print(f"{label:14} {d:13.0f} {d / base[0]:6.2f} {c:17.0f} {c / base[1]:6.2f}  {'yes' if ok else 'NO'}   ({secs} s, {cpu} CPU-s)")
sys.exit(0 if all(r[2] for r in rows.values()) else 1)
PY
