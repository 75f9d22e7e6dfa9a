#!/usr/bin/env python3
"""Room scenarios for the sockets-chat example (Tests/SocketsTests/ChatTests.swift).

Usage: chat_rooms.py <scenario> --server <path to sockets-chat> [options]

Starts its own sockets-chat on 127.0.0.1 (port 0), plays one scenario with Python's `websockets`
client (or raw sockets where a client must misbehave), and prints ONE JSON object with what it
observed. The Swift test decides pass or fail.

Scenarios:
  rooms   two rooms, join/leave notices, messages both ways, nothing across rooms, names with
          spaces/unicode/slashes, an invalid name
  origin  handshakes with the same-host, a foreign, and no Origin
  pages   the pages and assets over HTTP, and a traversal attempt
  slow    a client that stops reading must not stall the room, and is dropped as too slow

Exit status: 0 when the scenario ran (an unexpected exception is reported in the JSON); 2 bad
arguments; 3 when `websockets` is missing.
"""

import argparse
import asyncio
import base64
import json
import os
import socket
import sys
import time
import traceback
import urllib.request
from urllib.parse import quote

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # pragma: no cover
    print(f"chat_rooms.py: the Python package 'websockets' is required ({e}); pip install websockets", file=sys.stderr)
    sys.exit(3)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_server import ChatServer  # noqa: E402

STEP = 5.0


class Client:
    """A chat client that records every JSON message it receives, as [typ, from, text]."""

    def __init__(self, server, room, name):
        self.server = server
        self.room = room
        self.name = name
        self.seen = []
        self.ws = None
        self.reader = None
        self.close_code = None
        self.close_reason = None

    @property
    def url(self):
        return f"{self.server.ws_base}/sockets/rooms/{quote(self.room, safe='')}/{quote(self.name, safe='')}"

    async def open(self):
        self.ws = await connect(self.url, origin=self.server.base, open_timeout=STEP, close_timeout=STEP,
                                ping_interval=None, max_size=None)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            async for data in self.ws:
                try:
                    m = json.loads(data)
                    if m.get("typ") == "members":
                        # The member list, as ["members", "", "alice,bob"].
                        self.seen.append(["members", m.get("from"), ",".join(m.get("members") or [])])
                    else:
                        self.seen.append([m.get("typ"), m.get("from"), m.get("text")])
                except ValueError:
                    self.seen.append(["<not json>", None, data if isinstance(data, str) else data.hex()])
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd else None
            self.close_reason = rcvd.reason if rcvd else None

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def close(self):
        await self.ws.close(1000)
        await self.reader

    async def wait_for(self, entry, timeout=STEP):
        """Waits until [typ, from, text] has been received; False on timeout."""
        deadline = time.monotonic() + timeout
        while entry not in self.seen:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


async def scenario_rooms(server, args):
    out = {"waits": {}}

    async def wait(label, client, entry):
        out["waits"][label] = await client.wait_for(entry)

    async def wait_join(first, second):
        """The handshake completing does not mean the server has put the client in its room yet
        (that happens in the route's handler, just after), so two clients opened one after the
        other may join in either order. Whichever joined second is announced to the other; this
        waits for that notice, which also proves both are in the room."""
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            if ["status", second.name, "joined"] in first.seen or ["status", first.name, "joined"] in second.seen:
                out["waits"][f"{first.name} and {second.name} in the room"] = True
                return
            await asyncio.sleep(0.01)
        out["waits"][f"{first.name} and {second.name} in the room"] = False

    alice = await Client(server, "lobby", "alice").open()
    bob = await Client(server, "lobby", "bob").open()
    await wait_join(alice, bob)
    carol = await Client(server, "garden", "carol").open()
    dave = await Client(server, "garden", "dave").open()
    await wait_join(carol, dave)

    # A forged sender and a forged status: the server sets both fields itself.
    await alice.send({"typ": "message", "from": "mallory", "text": "hello bob"})
    await bob.send({"text": "hi alice"})  # typ and from missing: filled in by the server
    await carol.send({"typ": "message", "text": "garden only"})
    await dave.send({"typ": "status", "from": "carol", "text": "left"})
    # Not JSON for the message type, and an empty text: skipped, connection stays open.
    await alice.send("this is not json")
    await alice.send({"typ": "message", "text": ""})
    await alice.send({"typ": "message", "text": "still here"})
    await wait("bob gets hello", bob, ["message", "alice", "hello bob"])
    await wait("alice gets hi", alice, ["message", "bob", "hi alice"])
    await wait("dave gets garden", dave, ["message", "carol", "garden only"])
    await wait("carol gets forged status as message", carol, ["message", "dave", "left"])
    await wait("bob gets still here", bob, ["message", "alice", "still here"])

    # Names that need percent-encoding: a space, non-ASCII, a slash (encoded as %2F).
    zoe = await Client(server, "café/2", "zoë ✓").open()
    yan = await Client(server, "café/2", "yan lee").open()
    await wait_join(zoe, yan)
    await yan.send({"text": "grüße 🌍"})
    await wait("zoe gets unicode", zoe, ["message", "yan lee", "grüße 🌍"])

    # Leaving: Bob closes; Alice is told.
    await bob.close()
    await wait("alice sees bob leave", alice, ["status", "bob", "left"])
    # Give stray deliveries (to the wrong room, say) time to arrive before reporting.
    await asyncio.sleep(0.5)

    # A name over 64 characters is refused with 1008 after the handshake.
    bad = Client(server, "lobby", "x" * 65)
    try:
        await bad.open()
        await asyncio.wait_for(bad.reader, STEP)
        out["invalid_name"] = {"opened": True, "close_code": bad.close_code, "close_reason": bad.close_reason}
    except Exception as e:
        out["invalid_name"] = {"opened": False, "error": f"{type(e).__name__}: {e}"}
    await asyncio.sleep(0.2)

    clients = [alice, carol, dave, zoe, yan]
    # What each saw, before anyone else leaves (leaving would add notices).
    for c in clients + [bob]:
        out[c.name] = list(c.seen)
    for c in clients:
        await c.close()
    out["alice_state_after_bad_message"] = "open"  # alice's later messages arrived, see waits
    return out


def raw_handshake(server, path, origin):
    """A handshake written by hand; returns the status code and the first line of the body."""
    host = server.base.split("://", 1)[1]
    hostname, port = host.rsplit(":", 1)
    s = socket.create_connection((hostname, int(port)), timeout=STEP)
    try:
        headers = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                   f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13"]
        if origin is not None:
            headers.append(f"Origin: {origin}")
        s.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        if status != 101:
            while len(rest) < length:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rest += chunk
        return {"status": status, "body": rest[:length].decode("utf-8", "replace")}
    finally:
        s.close()


async def scenario_origin(server, args):
    path = "/sockets/rooms/lobby/alice"
    loop = asyncio.get_running_loop()

    def run(origin):
        return raw_handshake(server, path, origin)

    return {
        "same_host": await loop.run_in_executor(None, run, server.base),
        "foreign": await loop.run_in_executor(None, run, "http://evil.example"),
        "foreign_same_port": await loop.run_in_executor(None, run, "http://evil.example:" + str(server.port)),
        "missing": await loop.run_in_executor(None, run, None),
    }


def http_get(server, path):
    """GET with the path sent as written (urllib would not normalise `..` either, but this is
    explicit); returns status, content type and body."""
    host = server.base.split("://", 1)[1]
    hostname, port = host.rsplit(":", 1)
    s = socket.create_connection((hostname, int(port)), timeout=STEP)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return {"status": int(lines[0].split(" ")[1]), "content_type": headers.get("content-type"),
            "body": body.decode("utf-8", "replace")}


async def scenario_pages(server, args):
    loop = asyncio.get_running_loop()
    paths = ["/", "/rooms/lobby", "/rooms/caf%C3%A9%2F2", "/chat.css", "/room.js", "/index.js", "/favicon.svg",
             "/room.html", "/nope.html", "/../Package.swift", "/%2e%2e/Package.swift", "/rooms/lobby/extra"]
    out = {}
    for p in paths:
        out[p] = await loop.run_in_executor(None, http_get, server, p)
    return out


class SlowClient:
    """Handshakes with a tiny receive buffer and then does not read, until told to."""

    def __init__(self, server, room, name):
        host = server.base.split("://", 1)[1]
        hostname, port = host.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connect, so the advertised window stays small (the kernel doubles it).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(STEP)
        self.sock.connect((hostname, int(port)))
        path = f"/sockets/rooms/{quote(room, safe='')}/{quote(name, safe='')}"
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: {server.base}\r\n\r\n")
        self.sock.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(1)  # byte by byte: leave any frame after the head unread
        self.status = int(data.split(b" ", 2)[1])

    def drain(self, seconds):
        """Reads everything for up to `seconds`; reports bytes read and whether the connection
        ended (EOF or reset)."""
        total = 0
        ended = None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            except ConnectionResetError:
                ended = "reset"
                break
            if not chunk:
                ended = "eof"
                break
            total += len(chunk)
        return {"bytes_read": total, "ended": ended}


async def scenario_slow(server, args):
    out = {"waits": {}}
    alice = await Client(server, "lobby", "alice").open()
    bob = await Client(server, "lobby", "bob").open()
    # Either join notice proves both are in the room (see scenario_rooms); slowpoke comes after.
    deadline = time.monotonic() + STEP
    while not (["status", "bob", "joined"] in alice.seen or ["status", "alice", "joined"] in bob.seen):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    slow = await loop.run_in_executor(None, SlowClient, server, "lobby", "slowpoke")
    out["slow_handshake"] = slow.status
    out["waits"]["alice sees slowpoke join"] = await alice.wait_for(["status", "slowpoke", "joined"])

    # Bob writes a lot, at a pace Alice can follow (batches of 10, 20 ms apart); slowpoke reads
    # nothing, so its kernel buffers, its socket's send buffer and then its outbox fill up. Alice
    # must get everything, in order, without waiting for slowpoke.
    text = "x" * args.size
    start = time.monotonic()
    for i in range(args.count):
        await bob.send({"text": f"{i:06d} {text}"})
        if i % 10 == 9:
            await asyncio.sleep(0.02)
    sent_at = time.monotonic() - start
    deadline = time.monotonic() + 20
    while sum(1 for e in alice.seen if e[0] == "message") < args.count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    got = [e[2][:6] for e in alice.seen if e[0] == "message" and e[1] == "bob"]
    out["alice_received"] = len(got)
    out["alice_in_order"] = got == [f"{i:06d}" for i in range(args.count)]
    out["alice_seconds"] = round(time.monotonic() - start, 3)
    out["bob_send_seconds"] = round(sent_at, 3)
    # Slowpoke overflowed its outbox: the server drops it, and the room is told.
    out["waits"]["alice sees slowpoke leave"] = await alice.wait_for(["status", "slowpoke", "left"], timeout=20)
    out["slowpoke_left_after"] = round(time.monotonic() - start, 3)
    out["slowpoke"] = await loop.run_in_executor(None, slow.drain, 5.0)
    slow.sock.close()
    # The room still works afterwards.
    await bob.send({"text": "after"})
    out["waits"]["alice gets after"] = await alice.wait_for(["message", "bob", "after"])
    await alice.close()
    await bob.close()
    out["alice_status"] = [e for e in alice.seen if e[0] == "status"]
    return out


SCENARIOS = {"rooms": scenario_rooms, "origin": scenario_origin, "pages": scenario_pages, "slow": scenario_slow}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--server", required=True, help="path to the sockets-chat executable")
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument for the server")
    parser.add_argument("--count", type=int, default=400, help="slow: messages bob sends")
    parser.add_argument("--size", type=int, default=32000, help="slow: bytes per message")
    args = parser.parse_args()

    out = {"scenario": args.scenario}
    server = ChatServer(args.server, args.server_arg)
    try:
        server.start()
        out["base"] = server.base
        out.update(asyncio.run(asyncio.wait_for(SCENARIOS[args.scenario](server, args), 60)))
    except Exception as e:
        out["exception"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    finally:
        out["server_exit"] = server.stop()
        out["server_log_tail"] = server.log_tail(1500)
        server.remove_log()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
