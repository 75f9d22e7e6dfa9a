#!/usr/bin/env python3
"""Two sockets-chat instances sharing rooms through a real PostgreSQL (Tests/SocketsTests/ChatTests.swift).

Usage: chat_cluster.py --server <path to sockets-chat> [--messages N]

Makes a throwaway PostgreSQL cluster (pg_cluster.py), starts two sockets-chat on 127.0.0.1 with
`--backplane postgres://...`, and plays, with Python `websockets` clients on both:
  1. alice and bob on instance A, carol and dave on instance B, all in "lobby": every member list
     converges to the four of them;
  2. each client sends N messages: every other member must get each exactly once, in order per sender;
  3. a 20,000-byte message from A to B (over NOTIFY's 8,000-byte limit);
  4. PostgreSQL is stopped abruptly and started again: meanwhile each instance keeps serving its
     own members; afterwards cross-instance delivery resumes, and the outage is reported in /stats;
  5. instance B is killed (SIGKILL, no goodbye): A's members see carol and dave leave.
Prints ONE JSON object with what it observed; the Swift test decides pass or fail.

Exit status: 0 when the scenario ran (an exception is reported in the JSON); 2 bad arguments;
3 `websockets` is missing; 6 PostgreSQL is missing.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import traceback
import urllib.request
from urllib.parse import quote

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # pragma: no cover
    print(f"chat_cluster.py: the Python package 'websockets' is required ({e}); pip install websockets", file=sys.stderr)
    sys.exit(3)

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_server import ChatServer  # noqa: E402
from pg_cluster import PgCluster, PgMissing  # noqa: E402

STEP = 15.0


class Client:
    def __init__(self, server, room, name):
        self.server, self.room, self.name = server, room, name
        self.seen = []      # [typ, from, text]
        self.members = None
        self.ws = None
        self.reader = None

    async def open(self):
        url = f"{self.server.ws_base}/sockets/rooms/{quote(self.room, safe='')}/{quote(self.name, safe='')}"
        self.ws = await connect(url, origin=self.server.base, open_timeout=STEP, close_timeout=2,
                                ping_interval=None, max_size=None)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            async for data in self.ws:
                m = json.loads(data)
                if m.get("typ") == "members":
                    self.members = list(m.get("members") or [])
                    continue
                if m.get("typ") == "status" and self.members is not None:
                    if m.get("text") == "joined":
                        self.members.append(m.get("from"))
                    elif m.get("text") == "left" and m.get("from") in self.members:
                        self.members.remove(m.get("from"))
                self.seen.append([m.get("typ"), m.get("from"), m.get("text")])
        except ConnectionClosed:
            pass

    def messages(self):
        return [s for s in self.seen if s[0] == "message"]

    async def send(self, text):
        await self.ws.send(json.dumps({"text": text}))


async def until(what, condition, timeout=STEP):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def stats(server):
    with urllib.request.urlopen(server.base + "/stats", timeout=5) as r:
        return json.loads(r.read())


async def scenario(a, b, pg, args):
    out = {"waits": {}}
    loop = asyncio.get_running_loop()

    async def connected(servers, what):
        await until(what, lambda: all(stats(s)["backplane"]["connected"] for s in servers))

    await connected([a, b], "both instances listening")
    alice = await Client(a, "lobby", "alice").open()
    bob = await Client(a, "lobby", "bob").open()
    carol = await Client(b, "lobby", "carol").open()
    dave = await Client(b, "lobby", "dave").open()
    everyone = [alice, bob, carol, dave]
    names = sorted(c.name for c in everyone)
    await until("member lists", lambda: all(c.members is not None and sorted(c.members) == names for c in everyone))
    out["members"] = {c.name: sorted(c.members) for c in everyone}

    # 2. N messages from each, all at once.
    n = args.messages
    started = time.monotonic()
    for i in range(n):
        for c in everyone:
            await c.send(f"{c.name} {i}")
    expected = {c.name: {o.name: [f"{o.name} {i}" for i in range(n)] for o in everyone if o is not c} for c in everyone}

    def got(c):
        return {o.name: [m[2] for m in c.messages() if m[1] == o.name and m[2].startswith(o.name + " ")] for o in everyone if o is not c}

    try:
        await until("every message", lambda: all(got(c) == expected[c.name] for c in everyone), timeout=30)
        out["all_delivered"] = True
    except TimeoutError:
        out["all_delivered"] = False
    out["burst_seconds"] = round(time.monotonic() - started, 3)
    await asyncio.sleep(0.3)  # duplicates would arrive now
    out["deliveries"] = {c.name: {k: len(v) for k, v in got(c).items()} for c in everyone}
    out["in_order_exactly_once"] = {c.name: got(c) == expected[c.name] for c in everyone}
    out["own_echoes"] = sum(1 for c in everyone for m in c.messages() if m[1] == c.name)

    # 3. 20,000 bytes across instances.
    big = "".join(chr(0x61 + i % 26) for i in range(20_000))
    await alice.send(big)
    await until("the big message", lambda: any(m[2] == big for m in carol.messages()))
    out["big_intact"] = [m[2] for m in carol.messages() if m[1] == "alice"][-1] == big
    out["big_bytes"] = len(big.encode())

    # 4. PostgreSQL down and back.
    await loop.run_in_executor(None, pg.halt)
    await until("both see the outage", lambda: not any(stats(s)["backplane"]["connected"] for s in (a, b)))
    await alice.send("during the outage")
    await carol.send("during the outage too")
    await until("local delivery during the outage",
                lambda: ["message", "alice", "during the outage"] in bob.seen and ["message", "carol", "during the outage too"] in dave.seen)
    out["local_during_outage"] = True
    await loop.run_in_executor(None, pg.start)
    await connected([a, b], "both instances reconnected")
    await alice.send("after the restart")
    await carol.send("after the restart too")
    await until("cross-instance delivery again",
                lambda: ["message", "alice", "after the restart"] in carol.seen and ["message", "carol", "after the restart too"] in alice.seen)
    out["resumed"] = True
    out["outage_crossed"] = ["message", "alice", "during the outage"] in carol.seen or ["message", "carol", "during the outage too"] in alice.seen
    await asyncio.sleep(1.5)  # a heartbeat shows the gap
    out["stats_a"], out["stats_b"] = stats(a), stats(b)

    # 5. B dies without a goodbye.
    killed = time.monotonic()
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    await until("carol and dave leave on A", lambda: ["status", "carol", "left"] in alice.seen and ["status", "dave", "left"] in alice.seen
                and ["status", "carol", "left"] in bob.seen and ["status", "dave", "left"] in bob.seen)
    out["leaves_seen_after"] = round(time.monotonic() - killed, 3)
    out["members_after_kill"] = {c.name: sorted(c.members) for c in (alice, bob)}
    for c in (alice, bob):
        await c.ws.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="path to the sockets-chat executable")
    parser.add_argument("--messages", type=int, default=20, help="messages each client sends")
    args = parser.parse_args()
    out = {}
    # The test's watchdog sends SIGTERM: leave through the finally below, which stops the
    # servers and removes the PostgreSQL cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        pg = PgCluster()
    except PgMissing as e:
        print(f"chat_cluster.py: {e}", file=sys.stderr)
        return 6
    a = b = None
    try:
        pg.start()
        url = pg.url
        a = ChatServer(args.server, ["--quiet", "--backplane", url])
        b = ChatServer(args.server, ["--quiet", "--backplane", url])
        a.start()
        b.start()
        out.update(asyncio.run(asyncio.wait_for(scenario(a, b, pg, args), 120)))
    except Exception as e:
        out["exception"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    finally:
        for label, s in (("a", a), ("b", b)):
            if s is not None:
                out[f"server_{label}_exit"] = s.stop()
                out[f"server_{label}_log_tail"] = s.log_tail(3000)
                s.remove_log()
        pg.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
