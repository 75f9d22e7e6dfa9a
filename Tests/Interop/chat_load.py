#!/usr/bin/env python3
"""Load test of one sockets-chat room (Tests/SocketsTests/ChatTests.swift, Benchmarks/chat-load.sh).

Usage: chat_load.py (--server <path to sockets-chat> | --url http://HOST:PORT) [options]

N clients (default 200) join one room, spread over P worker processes (Python would otherwise be
the bottleneck long before the server). Then, in phases:

  warm-up  c000 sends one message; every other client must get it. This proves every client is
           in the room (a client is registered before its own messages are read, and joins are
           ordered with broadcasts), so nothing later can be missed because of a late join.
  probes   c000 sends --probes messages, --probe-interval apart: broadcast latency on an idle
           room (send -> each recipient; send -> the last of the N-1 recipients).
  burst    every client sends --messages messages back to back, all at once; each must reach each
           of the other N-1 clients exactly once. The time until the last client has all of them
           gives the room's throughput: messages in per second, and deliveries (= messages x
           (N-1)) per second. The latencies here include queueing behind the burst.
  rates    (with --rates R1,R2,...) one paced round per rate instead of the burst: the clients
           together send R messages/s for --duration seconds (each client one message every N/R
           s, phases spread at random). A round "keeps up" when every message reaches every other
           client exactly once and the p99 send->recipient latency stays under --max-p99-ms.
           Rounds stop at the first rate that does not keep up. This is the sustained rate a
           room handles; a burst much larger than a client's outbox (sockets-chat
           --client-queue, 1024 messages) instead disconnects the clients that cannot keep up.

Every message carries its sender's index, a sequence number and the send time
(time.monotonic(), one clock for all processes on Linux). Clients send a forged "from"; the
server must replace it with the real name. Each client counts what it got per (sender, seq):
missing, duplicated, its own messages coming back, a wrong "from" are all reported.

Prints ONE JSON object (and, with --human, a summary on stderr). Exit 0 when the run completed
(even with lost messages: the caller judges); 3 without `websockets`.
"""

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import traceback
from urllib.parse import quote

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # pragma: no cover
    print(f"chat_load.py: the Python package 'websockets' is required ({e}); pip install websockets", file=sys.stderr)
    sys.exit(3)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_server import ChatServer  # noqa: E402

ROOM = "load"


def name_of(i):
    return f"c{i:03d}"


class Tally:
    """What one client received, per phase: counts per (sender, seq) in a flat bytearray."""

    def __init__(self, n, per_sender):
        self.n = n
        self.per_sender = per_sender
        self.counts = bytearray(n * per_sender)
        self.total = 0
        self.wrong_from = 0
        self.overflow = 0  # a count past 255 (would be a massive duplication)

    def add(self, sender, seq):
        k = sender * self.per_sender + seq
        if self.counts[k] == 255:
            self.overflow += 1
        else:
            self.counts[k] += 1
        self.total += 1


class LoadClient:
    def __init__(self, index, n, messages, probes):
        self.index = index
        self.name = name_of(index)
        self.n = n
        self.ws = None
        self.warm = False
        self.probe = Tally(1, max(1, probes))
        self.round = "b0"
        self.burst = Tally(n, max(1, messages))
        self.latencies = {"probe": [], "burst": []}
        self.statuses = 0
        self.unexpected = 0
        self.late = 0
        self.closed_early = None

    def new_round(self, tag, messages):
        self.round = tag
        self.burst = Tally(self.n, max(1, messages))
        self.latencies["burst"] = []

    async def read(self):
        try:
            async for data in self.ws:
                now = time.monotonic()
                m = json.loads(data)
                if m.get("typ") != "message":
                    self.statuses += 1
                    continue
                parts = m.get("text", "").split(" ")
                # text: "<phase> <sender> <seq> <sent monotonic>"
                if len(parts) != 4:
                    self.unexpected += 1
                    continue
                phase, sender, seq, sent = parts[0], int(parts[1]), int(parts[2]), float(parts[3])
                if phase.startswith("b") and phase != self.round:
                    self.late += 1  # from an earlier round that had not finished
                    continue
                tally = self.burst if phase == self.round else self.probe if phase == "probe" else None
                if phase == "warm":
                    self.warm = True
                    if m.get("from") != name_of(sender):
                        self.burst.wrong_from += 1
                    continue
                if tally is None or sender >= self.burst.n or seq >= tally.per_sender:
                    self.unexpected += 1
                    continue
                if m.get("from") != name_of(sender):
                    tally.wrong_from += 1
                tally.add(0 if phase == "probe" else sender, seq)
                self.latencies["probe" if phase == "probe" else "burst"].append((now - sent, now, sender, seq))
        except ConnectionClosed as e:
            self.closed_early = f"{e}"
        except Exception as e:  # a bug here must show up in the report, not silently stop reading
            self.closed_early = f"reader failed: {type(e).__name__}: {e}"


async def send_text(ws, phase, index, seq):
    # A forged "from": the server must overwrite it with the sender's real name.
    await ws.send(json.dumps({"typ": "message", "from": "forged", "text": f"{phase} {index} {seq} {time.monotonic():.6f}"}))


async def wait_until(pred, timeout):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def worker(w, args, base, ctl, report):
    """One process: its share of the clients, driven by commands from the parent."""
    try:
        asyncio.run(worker_main(w, args, base, ctl, report))
    except Exception as e:
        report.put(("error", w, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


async def worker_main(w, args, base, ctl, report):
    loop = asyncio.get_running_loop()
    n = args.clients
    mine = [LoadClient(i, n, args.messages, args.probes) for i in range(w, n, args.processes)]
    # With several instances (--instances), client process w talks to instance w mod N.
    base = base[w % len(base)] if isinstance(base, list) else base
    ws_base = "ws://" + base.split("://", 1)[1]

    async def command():
        return await loop.run_in_executor(None, ctl.get)

    async def open_client(c):
        c.ws = await connect(f"{ws_base}/sockets/rooms/{ROOM}/{quote(c.name)}", origin=base,
                             open_timeout=30, close_timeout=10, ping_interval=None, max_size=None, max_queue=None)
        return asyncio.create_task(c.read())

    t0 = time.monotonic()
    readers = []
    # Connect in small batches: 200 handshakes at once would only measure the accept queue.
    for k in range(0, len(mine), 20):
        readers += await asyncio.gather(*(open_client(c) for c in mine[k:k + 20]))
    report.put(("connected", w, time.monotonic() - t0))

    while True:
        cmd = await command()
        if isinstance(cmd, tuple):
            cmd, tag, messages, rate = cmd
        if cmd == "warm":
            if any(c.index == 0 for c in mine):
                await send_text(next(c for c in mine if c.index == 0).ws, "warm", 0, 0)
            ok = await wait_until(lambda: all(c.warm for c in mine if c.index != 0), args.timeout)
            report.put(("warm", w, ok))
        elif cmd == "probe":
            if any(c.index == 0 for c in mine):
                sender = next(c for c in mine if c.index == 0)
                for k in range(args.probes):
                    await send_text(sender.ws, "probe", 0, k)
                    await asyncio.sleep(args.probe_interval)
            ok = await wait_until(lambda: all(c.probe.total >= args.probes for c in mine if c.index != 0), args.timeout)
            report.put(("probe", w, ok))
        elif cmd == "burst":
            for c in mine:
                c.new_round(tag, messages)
            expected = (n - 1) * messages
            # Paced: one message every n/rate s per client, from a random phase; else all at once.
            interval = n / rate if rate else 0.0
            rng = random.Random(w)

            async def blast(c):
                if interval:
                    start = time.monotonic() + rng.random() * interval
                for s in range(messages):
                    if interval:
                        delay = start + s * interval - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await send_text(c.ws, tag, c.index, s)
            await asyncio.gather(*(blast(c) for c in mine))
            ok = await wait_until(lambda: all(c.burst.total >= expected for c in mine), args.timeout)
            done_at = time.monotonic()
            # A little longer, so that duplicates arriving after the count is reached are seen.
            await asyncio.sleep(0.3)
            report.put(("burst", w, ok, done_at))
        elif cmd == "report":
            report.put(("report", w, summarize(mine, args)))
        elif cmd == "close":
            await asyncio.gather(*(c.ws.close(1000) for c in mine), return_exceptions=True)
            await asyncio.gather(*readers, return_exceptions=True)
            report.put(("closed", w))
            return


def summarize(mine, args):
    n = args.clients
    out = {"received": 0, "missing": 0, "duplicates": 0, "from_self": 0, "wrong_from": 0, "unexpected": 0, "late": 0,
           "missing_examples": [],
           "probe_missing": 0, "probe_duplicates": 0, "closed_early": [], "statuses": 0,
           "latency_burst": [], "latency_probe": [], "probe_arrivals": {}}
    for c in mine:
        b = c.burst
        out["received"] += b.total
        out["wrong_from"] += b.wrong_from + c.probe.wrong_from
        out["unexpected"] += c.unexpected + b.overflow
        out["late"] += c.late
        out["statuses"] += c.statuses
        for sender in range(n):
            row = b.counts[sender * b.per_sender:(sender + 1) * b.per_sender]
            if sender == c.index:
                out["from_self"] += sum(row)
                continue
            for seq, v in enumerate(row):
                if v == 0:
                    out["missing"] += 1
                    if len(out["missing_examples"]) < 10:
                        out["missing_examples"].append(f"{c.name} lacks {name_of(sender)} #{seq} (has {b.total} in all)")
                elif v > 1:
                    out["duplicates"] += v - 1
        if c.index != 0:
            for v in c.probe.counts[:args.probes]:
                if v == 0:
                    out["probe_missing"] += 1
                elif v > 1:
                    out["probe_duplicates"] += v - 1
        else:
            out["from_self"] += sum(c.probe.counts[:args.probes])
        if c.closed_early:
            out["closed_early"].append(f"{c.name}: {c.closed_early}")
        out["latency_burst"] += [x[0] for x in c.latencies["burst"]]
        out["latency_probe"] += [x[0] for x in c.latencies["probe"]]
        for lat, now, sender, seq in c.latencies["probe"]:
            out["probe_arrivals"].setdefault(seq, []).append(lat)
    return out


def percentiles(values, ps=(50, 90, 99, 100)):
    if not values:
        return {}
    v = sorted(values)
    out = {}
    for p in ps:
        k = min(len(v) - 1, max(0, int(round(p / 100 * len(v))) - 1))
        out["max" if p == 100 else f"p{p}"] = round(v[k] * 1000, 3)
    return out


def cpu_seconds(pid):
    """user + system CPU time of a process (or the sum over a list of them) so far (Linux /proc), or None."""
    if isinstance(pid, list):
        times = [cpu_seconds(p) for p in pid]
        return None if None in times else sum(times)
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run(args, base, server_pid=None):
    ctx = mp.get_context("fork")
    report = ctx.Queue()
    ctls = [ctx.Queue() for _ in range(args.processes)]
    procs = [ctx.Process(target=worker, args=(w, args, base, ctls[w], report), daemon=True) for w in range(args.processes)]
    out = {"clients": args.clients, "processes": args.processes, "messages_per_client": args.messages,
           "probes": args.probes, "errors": []}
    t0 = time.monotonic()
    for p in procs:
        p.start()

    def collect(kind, timeout):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < args.processes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"workers did not report {kind!r} within {timeout} s ({len(got)} did)")
            try:
                msg = report.get(timeout=remaining)
            except Exception:
                continue
            if msg[0] == "error":
                raise RuntimeError(f"worker {msg[1]} failed: {msg[2]}")
            if msg[0] == kind:
                got.append(msg)
        return got

    def broadcast(cmd):
        for q in ctls:
            q.put(cmd)

    try:
        collect("connected", args.timeout + 30)
        out["connect_seconds"] = round(time.monotonic() - t0, 3)
        broadcast("warm")
        out["warm_ok"] = all(m[2] for m in collect("warm", args.timeout + 5))
        broadcast("probe")
        out["probe_ok"] = all(m[2] for m in collect("probe", args.timeout + args.probes * args.probe_interval + 5))
        rounds = []
        plan = [(f"b{k}", max(1, math.ceil(args.duration * r / args.clients)), r) for k, r in enumerate(args.rates, 1)] \
            if args.rates else [("b1", args.messages, 0)]
        for tag, messages, rate in plan:
            start = time.monotonic()
            cpu_before = cpu_seconds(server_pid) if server_pid else None
            broadcast(("burst", tag, messages, rate))
            bursts = collect("burst", args.timeout + (messages * args.clients / rate if rate else 0) + 10)
            seconds = max(m[3] for m in bursts) - start
            cpu_after = cpu_seconds(server_pid) if server_pid else None
            broadcast("report")
            reports = [m[2] for m in collect("report", 60)]
            result = round_result(args, reports, messages, rate, seconds, all(m[2] for m in bursts))
            if cpu_before is not None and cpu_after is not None:
                # The server's own CPU time for the round (it includes the 0.3 s tail and nothing
                # else: the room is otherwise idle). Unlike the rates, this hardly depends on what
                # else runs on the machine.
                result["server_cpu_seconds"] = round(cpu_after - cpu_before, 3)
                result["server_cpu_us_per_delivery"] = round((cpu_after - cpu_before) / result["expected"] * 1e6, 2)
            rounds.append(result)
            if args.human and args.rates:
                cpu = result.get("server_cpu_us_per_delivery")
                print(f"  {rate:>6} messages/s offered: {'kept up' if result['kept_up'] else 'did NOT keep up'}; "
                      f"delivered {result['received']}/{result['expected']}, latency ms {result['burst_latency_ms']}"
                      + (f", server CPU {cpu} us/delivery" if cpu is not None else ""),
                      file=sys.stderr, flush=True)
            if args.rates and not result["kept_up"]:
                break
        broadcast("close")
        collect("closed", 30)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()

    # The probes are the same in every report: take them from the first round's.
    first = rounds[0]["_probe"]
    for r in rounds:
        del r["_probe"]
    out["probe_latency_ms"] = percentiles(first["latency_probe"])
    out["probe_fanout_ms"] = percentiles(first["fanout"])
    out["probe_missing"] = first["probe_missing"]
    out["probe_duplicates"] = first["probe_duplicates"]
    if args.rates:
        out["rounds"] = rounds
        kept = [r for r in rounds if r["kept_up"]]
        out["max_sustained_messages_per_second"] = max((r["offered_rate"] for r in kept), default=0)
        out["max_sustained_deliveries_per_second"] = out["max_sustained_messages_per_second"] * (args.clients - 1)
    else:
        out.update(rounds[0])
    return out


def round_result(args, reports, messages, rate, seconds, completed):
    n = args.clients
    r = {k: sum(x[k] for x in reports) for k in ("received", "missing", "duplicates", "from_self", "wrong_from",
                                                   "unexpected", "late", "statuses")}
    r["messages_per_client"] = messages
    r["offered_rate"] = rate
    r["burst_ok"] = completed
    r["expected"] = n * (n - 1) * messages
    r["closed_early"] = sum((x["closed_early"] for x in reports), [])[:10]
    r["missing_examples"] = sum((x["missing_examples"] for x in reports), [])[:10]
    r["burst_seconds"] = round(seconds, 3)
    r["messages_per_second"] = round(n * messages / seconds, 1)
    r["deliveries_per_second"] = round(n * (n - 1) * messages / seconds, 1)
    lat = sum((x["latency_burst"] for x in reports), [])
    r["burst_latency_ms"] = percentiles(lat)
    r["kept_up"] = None if not rate else bool(completed and r["missing"] == 0 and r["duplicates"] == 0 and not r["closed_early"]
                        and r["burst_latency_ms"].get("p99", 1e9) <= args.max_p99_ms)
    arrivals = {}
    for x in reports:
        for seq, lats in x["probe_arrivals"].items():
            arrivals.setdefault(seq, []).extend(lats)
    r["_probe"] = {
        "latency_probe": sum((x["latency_probe"] for x in reports), []),
        # Fan-out time of a probe: send -> the last of the N-1 recipients has it.
        "fanout": [max(v) for v in arrivals.values()],
        "probe_missing": sum(x["probe_missing"] for x in reports),
        "probe_duplicates": sum(x["probe_duplicates"] for x in reports),
    }
    return r

def wait_backplanes(bases, timeout=30):
    """Waits until every server's backplane is listening (its /stats says so)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(json.loads(urllib.request.urlopen(b + "/stats", timeout=5).read())["backplane"]["connected"] for b in bases):
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError("the servers' backplanes did not connect")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", help="path to sockets-chat (started on a free port, stopped after)")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--instances", type=int, default=1,
                        help="start this many servers sharing the room through --backplane; client process w uses instance w mod N")
    parser.add_argument("--backplane", help="postgres:// URL passed to every server as --backplane")
    parser.add_argument("--url", help="a running sockets-chat, e.g. http://127.0.0.1:3000")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="burst messages per client")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--probe-interval", type=float, default=0.05)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60, help="per phase")
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=None,
                        help="paced rounds at these room-wide rates (messages/s), e.g. 50,100,200")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per paced round")
    parser.add_argument("--max-p99-ms", type=float, default=1000.0, help="a paced round keeps up under this p99")
    parser.add_argument("--human", action="store_true", help="also print a summary on stderr")
    args = parser.parse_args()
    if not args.server and not args.url:
        parser.error("give --server or --url")
    args.processes = max(1, min(args.processes, args.clients))

    if args.instances > 1 and not args.backplane:
        parser.error("--instances > 1 needs --backplane")
    args.processes = max(args.processes, args.instances)

    out = {"scenario": "load", "instances": args.instances}
    server = None
    servers = []
    try:
        if args.server:
            extra = args.server_arg + (["--backplane", args.backplane] if args.backplane else [])
            servers = [ChatServer(args.server, extra) for _ in range(args.instances)]
            server = servers[0]
            bases = [s.start() for s in servers]
            if args.backplane:
                wait_backplanes(bases)
            base = bases if len(bases) > 1 else bases[0]
        else:
            base = args.url.rstrip("/")
        out["base"] = base
        out.update(run(args, base, [s.proc.pid for s in servers] if servers else None))
    except Exception as e:
        out["exception"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    finally:
        for s in servers[1:]:
            s.stop()
            if "exception" in out:
                out.setdefault("other_server_log_tails", []).append(s.log_tail(2000))
            s.remove_log()
        if server is not None:
            out["server_exit"] = server.stop()
            if "exception" in out:
                out["server_log_tail"] = server.log_tail(2000)
            server.remove_log()
    print(json.dumps(out))
    if args.human and "exception" not in out and args.rates:
        print(f"room of {out['clients']} clients ({out['processes']} client processes): highest rate that kept up "
              f"(everything delivered exactly once, p99 latency <= {args.max_p99_ms:.0f} ms): "
              f"{out['max_sustained_messages_per_second']:.0f} messages/s in, "
              f"{out['max_sustained_deliveries_per_second']:.0f} deliveries/s out\n"
              f"  server CPU per delivery (median over rounds): "
              f"{statistics.median([r['server_cpu_us_per_delivery'] for r in out['rounds'] if 'server_cpu_us_per_delivery' in r] or [0]):.1f} us\n"
              f"  idle-room latency send->recipient ms {out['probe_latency_ms']}, send->last recipient ms {out['probe_fanout_ms']}",
              file=sys.stderr)
    elif args.human and "exception" not in out:
        print(f"room of {out['clients']} clients ({out['processes']} client processes), "
              f"{out['messages_per_client']} messages each at once:\n"
              f"  {out['messages_per_second']:.0f} messages/s in, {out['deliveries_per_second']:.0f} deliveries/s out "
              f"({out['burst_seconds']} s for {out['expected']} deliveries)\n"
              f"  delivered {out['received']}/{out['expected']}, missing {out['missing']}, duplicates {out['duplicates']}, "
              f"own echoed {out['from_self']}, wrong from {out['wrong_from']}\n"
              f"  idle-room latency send->recipient ms {out['probe_latency_ms']}, send->last recipient ms {out['probe_fanout_ms']}\n"
              f"  latency under the burst ms {out['burst_latency_ms']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
