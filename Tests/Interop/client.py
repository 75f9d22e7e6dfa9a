#!/usr/bin/env python3
"""Interop client for the Sockets server tests (Tests/SocketsTests/InteropTests.swift).

Usage: client.py <scenario> <url> [options]

It plays one scenario against a running server and prints ONE JSON object with what it
observed (messages, close codes, HTTP statuses, byte counts, timings), then exits 0. It never
decides pass or fail: the Swift test does, from the JSON.

Two kinds of peer:
- an independent client library, Python's `websockets` (asyncio implementation), for the
  well-behaved scenarios;
- a hand-written client over a plain socket for the misbehaving ones (bad frames, bad
  handshakes, clients that stop reading or answering), since no library will misbehave on
  purpose.

Exit status: 0 whenever the scenario ran (even if the server misbehaved; an unexpected exception
is reported in the JSON under "exception"); 2 for bad arguments; 3 when `websockets` is missing,
so that the Swift test fails loudly instead of skipping.
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import select
import socket
import struct
import sys
import time
import traceback
from urllib.parse import urlsplit

try:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # pragma: no cover - exercised only on a machine without websockets
    print(f"client.py: the Python package 'websockets' is required ({e}); pip install websockets", file=sys.stderr)
    sys.exit(3)

# Every network wait in this file is bounded, so a misbehaving server can never hang the test.
STEP = 10.0  # generous: CI runs on 2 shared cores; only failures wait this long

# RFC 6455 §5.2 opcodes.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def pattern(n):
    """The deterministic payload of the large echo: byte i is i mod 251 (the Swift side builds
    the same bytes to compare)."""
    return bytes(i % 251 for i in range(n))


def origin_of(url):
    """The same-host Origin a browser page served by this server would send."""
    parts = urlsplit(url)
    return f"http://{parts.netloc}"


def close_info(ws):
    """What the websockets connection recorded of the closing handshake."""
    p = ws.protocol
    rcvd = p.close_rcvd
    sent = p.close_sent
    return {
        "rcvd_code": rcvd.code if rcvd is not None else None,
        "rcvd_reason": rcvd.reason if rcvd is not None else None,
        "sent_code": sent.code if sent is not None else None,
        "close_code": ws.close_code,
    }


# ---------------------------------------------------------------------------------------------
# Raw WebSocket client over a plain socket.


def mask_payload(payload, key):
    # RFC 6455 §5.3: octet i of the payload is XORed with octet i mod 4 of the masking key.
    # Done as one big-integer XOR so 64 KB frames are masked quickly.
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload, fin=True, masked=True, rsv=0):
    """One frame, RFC 6455 §5.2: FIN|RSV1-3|opcode, MASK|len7 [len16|len64] [key] payload."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        header = bytes([b0, mbit | n])
    elif n < 65536:
        header = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        header = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        return header + key + mask_payload(payload, key)
    return header + payload


class RawConnection:
    """A socket that speaks just enough HTTP and WebSocket framing to misbehave on purpose."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port
        self.path = (parts.path or "/") + (("?" + parts.query) if parts.query else "")
        self.netloc = parts.netloc
        self.sock = socket.create_connection((self.host, self.port), timeout=STEP)
        self.buf = b""

    def default_headers(self):
        key = base64.b64encode(os.urandom(16)).decode()
        return [
            ("Host", self.netloc),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", f"http://{self.netloc}"),
        ]

    def send_request(self, method="GET", headers=None, target=None, version="HTTP/1.1"):
        headers = self.default_headers() if headers is None else headers
        target = self.path if target is None else target
        lines = [f"{method} {target} {version}"] + [f"{k}: {v}" for k, v in headers] + ["", ""]
        self.sock.sendall("\r\n".join(lines).encode("latin-1"))

    def await_eof(self, timeout):
        """Waits up to `timeout` seconds for the server to close; returns (closed, seconds, extra
        bytes received meanwhile)."""
        start = time.monotonic()
        extra = b""
        deadline = start + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False, round(time.monotonic() - start, 3), extra
                self.sock.settimeout(remaining)
                data = self.sock.recv(65536)
                if not data:
                    return True, round(time.monotonic() - start, 3), extra
                extra += data
        except socket.timeout:
            return False, round(time.monotonic() - start, 3), extra
        except (ConnectionResetError, BrokenPipeError):
            return True, round(time.monotonic() - start, 3), extra

    def _fill(self, deadline):
        """Reads more bytes into the buffer; False at EOF or on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for the server")
        if not data:
            return False
        self.buf += data
        return True

    def read_response(self, read_body=True, timeout=STEP):
        """Reads the status line, the headers and (except for 101) a Content-Length body."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                break
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0] if lines else ""
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), []).append(v.strip())
        body = b""
        if read_body and status != 101:
            length = headers.get("content-length")
            if length is not None:
                n = int(length[0])
                while len(self.buf) < n and self._fill(deadline):
                    pass
                body, self.buf = self.buf[:n], self.buf[n:]
            else:
                try:
                    while self._fill(deadline):
                        pass
                except TimeoutError:
                    pass
                body, self.buf = self.buf, b""
        return {
            "status": status,
            "status_line": status_line,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
            "complete": bool(sep),
        }

    def handshake(self):
        self.send_request()
        return self.read_response(read_body=False)

    def read_frame(self, deadline):
        """The next server frame as (fin, opcode, payload), or None at EOF. Server frames are
        never masked (RFC 6455 §5.1), but a mask is honoured if present so we report rather than
        crash."""
        def need(n):
            while len(self.buf) < n:
                if not self._fill(deadline):
                    return False
            return True

        if not need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not need(4):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not need(10):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        key = None
        if b1 & 0x80:
            if not need(pos + 4):
                return None
            key = self.buf[pos:pos + 4]
            pos += 4
        if not need(pos + n):
            return None
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if key is not None:
            payload = mask_payload(payload, key)
        return (bool(b0 & 0x80), b0 & 0x0F, payload)

    def read_until_close(self, timeout=STEP, answer_pings=True):
        """Reads frames until the server's close frame and then EOF; reports what it saw."""
        start = time.monotonic()
        deadline = start + timeout
        frames = []
        out = {"close_code": None, "close_reason": None, "close_at": None, "eof": False, "eof_at": None,
               "timed_out": False, "reset": False}
        try:
            while True:
                f = self.read_frame(deadline)
                if f is None:
                    out["eof"] = True
                    out["eof_at"] = round(time.monotonic() - start, 3)
                    break
                fin, op, payload = f
                frames.append({"opcode": op, "length": len(payload), "at": round(time.monotonic() - start, 3)})
                if op == OP_CLOSE and out["close_code"] is None:
                    out["close_at"] = round(time.monotonic() - start, 3)
                    if len(payload) >= 2:
                        out["close_code"] = struct.unpack("!H", payload[:2])[0]
                        out["close_reason"] = payload[2:].decode("utf-8", "replace")
                    else:
                        out["close_code"] = 1005  # no status code in the frame
                    # Complete the closing handshake as RFC 6455 §5.5.1 asks; ignore a server
                    # that has already gone.
                    try:
                        self.sock.sendall(build_frame(OP_CLOSE, payload[:2]))
                    except OSError:
                        pass
                elif op == OP_PING and answer_pings:
                    try:
                        self.sock.sendall(build_frame(OP_PONG, payload))
                    except OSError:
                        pass
        except TimeoutError:
            out["timed_out"] = True
        except ConnectionResetError:
            out["reset"] = True
            out["eof_at"] = round(time.monotonic() - start, 3)
        out["frames"] = frames[:50]
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Scenarios with the websockets client.


async def ws_connect(url, **kw):
    kw.setdefault("origin", origin_of(url))
    kw.setdefault("open_timeout", STEP)
    kw.setdefault("close_timeout", STEP)
    return await connect(url, **kw)


async def scenario_echo(args):
    """Autobahn 1.1.x/1.2.x (text/binary, incl. 1.1.1 and 1.2.1 empty), 9.2.1 (64 KiB binary,
    here 100 KB), 5.3 (text in 2+ fragments), 6.2.x (valid multi-byte UTF-8), 2.2 (ping with
    payload answered)."""
    out = {}
    big = args.big
    async with await ws_connect(args.url, max_size=max(big * 2, 1 << 20), ping_interval=None) as ws:
        async def roundtrip(msg):
            await ws.send(msg)
            reply = await asyncio.wait_for(ws.recv(), STEP)
            return reply

        def describe(reply):
            if isinstance(reply, str):
                return {"type": "text", "value": reply}
            return {"type": "binary", "hex": reply.hex() if len(reply) <= 64 else None,
                    "length": len(reply)}

        out["text"] = describe(await roundtrip("hello, sockets"))
        out["empty_text"] = describe(await roundtrip(""))
        out["binary"] = describe(await roundtrip(bytes([0, 1, 2, 0xFE, 0xFF])))
        out["empty_binary"] = describe(await roundtrip(b""))
        reply = await roundtrip(pattern(big))
        out["big"] = {"type": "text" if isinstance(reply, str) else "binary", "length": len(reply),
                      "base64": base64.b64encode(reply).decode() if isinstance(reply, bytes) else None}
        # websockets sends an iterable as one message in several frames (RFC 6455 §5.4).
        out["fragmented"] = describe(await roundtrip(["frag", "men", "ted ✓"]))
        out["unicode"] = describe(await roundtrip("héllo wörld — κόσμε 🌍 ✓"))
        pong = await ws.ping(b"are you there")
        try:
            latency = await asyncio.wait_for(pong, STEP)
            out["pong"] = {"received": True, "latency_ms": round(latency * 1000, 3)}
        except asyncio.TimeoutError:
            out["pong"] = {"received": False}
        await ws.close(1000)
        out["close"] = close_info(ws)
    return out


async def scenario_client_close(args):
    """Autobahn 7.7.1 (1000) and 7.7.12 (4000): the client closes with a valid code."""
    async with await ws_connect(args.url, ping_interval=None) as ws:
        await ws.send("before close")
        await ws.close(args.code, "client says bye")
        return {"close": close_info(ws)}


async def scenario_await_close(args):
    """Connects, optionally sends one message, then waits for the server to close."""
    async with await ws_connect(args.url, ping_interval=None) as ws:
        if args.message is not None:
            await ws.send(args.message)
        received = []
        try:
            while True:
                received.append(await asyncio.wait_for(ws.recv(), STEP))
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            return {"timed_out": True, "received": received, "close": close_info(ws)}
        return {"timed_out": False, "received": [r if isinstance(r, str) else r.hex() for r in received],
                "close": close_info(ws)}


async def scenario_stream(args):
    """--clients websockets clients at once; each sends --messages texts ("c<i> m<k>"), one every
    --interval seconds, while reading the echoes, until the server closes. Reports per client:
    messages sent, echoes received (in order), the close code received and whether anything
    came after it (the websockets client raises on a frame after the close)."""

    async def one(i):
        async with await ws_connect(args.url, ping_interval=None, max_queue=None) as ws:
            sent = 0
            echoes = []

            async def sender():
                nonlocal sent
                try:
                    for k in range(args.messages):
                        await ws.send(f"c{i} m{k}")
                        sent += 1
                        await asyncio.sleep(args.interval)
                except ConnectionClosed:
                    pass

            task = asyncio.create_task(sender())
            try:
                while True:
                    echoes.append(await asyncio.wait_for(ws.recv(), STEP))
            except ConnectionClosed:
                pass
            except asyncio.TimeoutError:
                task.cancel()
                return {"sent": sent, "echoes": echoes, "timed_out": True, "close": close_info(ws)}
            await task
            return {"sent": sent, "echoes": echoes, "timed_out": False, "close": close_info(ws)}

    results = await asyncio.gather(*(one(i) for i in range(args.clients)), return_exceptions=True)
    return {"clients": [r if isinstance(r, dict) else {"error": f"{type(r).__name__}: {r}"} for r in results]}


async def scenario_subprotocol(args):
    offered = args.offer.split(",") if args.offer else []
    try:
        async with await ws_connect(args.url, subprotocols=offered, ping_interval=None) as ws:
            chosen = ws.subprotocol
            header = ws.response.headers.get_all("Sec-WebSocket-Protocol")
            await ws.close(1000)
            return {"opened": True, "subprotocol": chosen, "response_header": header, "offered": offered}
    except Exception as e:  # the observed outcome, whatever it is
        return {"opened": False, "error": f"{type(e).__name__}: {e}", "offered": offered}


async def scenario_too_big(args):
    """Sends one binary message of --size bytes and reports how the server closes."""
    async with await ws_connect(args.url, ping_interval=None, max_size=None) as ws:
        try:
            await ws.send(b"x" * args.size)
            reply = await asyncio.wait_for(ws.recv(), STEP)
            return {"echoed_length": len(reply), "close": close_info(ws)}
        except ConnectionClosed:
            return {"echoed_length": None, "close": close_info(ws)}


async def scenario_idle(args):
    """Autobahn has no liveness case. Stays connected and idle (no client pings) for --seconds
    while websockets answers the server's pings in its background task; then checks the
    connection still carries a message."""
    pings = []

    class PingCounter(logging.Handler):
        def emit(self, record):
            # websockets logs each received frame at DEBUG as "< PING ..." (protocol.py).
            msg = record.getMessage()
            if msg.startswith("< PING"):
                pings.append(time.monotonic())

    log = logging.getLogger("websockets.client")
    log.setLevel(logging.DEBUG)
    log.addHandler(PingCounter())
    log.propagate = False
    async with await ws_connect(args.url, ping_interval=None) as ws:
        await asyncio.sleep(args.seconds)
        state_after_idle = ws.state.name
        echo = None
        try:
            await ws.send("still here")
            echo = await asyncio.wait_for(ws.recv(), STEP)
        except ConnectionClosed:
            pass
        out = {"state_after_idle": state_after_idle, "echo": echo, "pings_received": len(pings)}
        await ws.close(1000)
        out["close"] = close_info(ws)
        return out


async def scenario_many(args):
    """50 clients at once, each sends 20 messages back to back, then reads the 20 echoes."""
    async def one(i):
        async with await ws_connect(args.url, ping_interval=None) as ws:
            for j in range(args.messages):
                await ws.send(f"client {i} message {j}")
            got = []
            for _ in range(args.messages):
                got.append(await asyncio.wait_for(ws.recv(), STEP))
            await ws.close(1000)
            return got

    results = await asyncio.gather(*(one(i) for i in range(args.clients)), return_exceptions=True)
    return {
        "clients": [r if isinstance(r, list) else None for r in results],
        "errors": [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, list)],
    }


async def scenario_reset_storm(args):
    """--clients connections, in batches of 100 at a time: each completes the handshake, sends
    the first 10 payload bytes of a 1000-byte text frame and is reset (SO_LINGER 0, so the
    server sees RST, not FIN). Meanwhile 10 websockets clients echo one message every 10 ms
    until the storm is over. Reports the handshake statuses, errors and each echo client's
    counts."""
    parts = urlsplit(args.url)
    host, port, netloc = parts.hostname, parts.port, parts.netloc
    path = parts.path or "/"
    stop = asyncio.Event()

    async def echoer(i):
        sent, ok, bad = 0, 0, []
        async with await ws_connect(args.url, ping_interval=None) as ws:
            while not stop.is_set():
                msg = f"echo {i} {sent}"
                await ws.send(msg)
                sent += 1
                reply = await asyncio.wait_for(ws.recv(), STEP)
                if reply == msg:
                    ok += 1
                else:
                    bad.append(reply)
                await asyncio.sleep(0.01)
            await ws.close(1000)
        return {"sent": sent, "ok": ok, "bad": bad[:5]}

    partial = build_frame(OP_TEXT, b"x" * 1000)[:2 + 2 + 4 + 10]  # header (16-bit length), mask, 10 bytes

    async def one_reset():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            request = (f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{netloc}\r\n\r\n")
            writer.write(request.encode("latin-1"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
            status = int(head.split(b" ", 2)[1])
            writer.write(partial)
            await writer.drain()
            return status
        finally:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    start = time.monotonic()
    echo_tasks = [asyncio.create_task(echoer(i)) for i in range(10)]
    await asyncio.sleep(0.2)
    statuses, errors = {}, []
    done = 0
    while done < args.clients:
        batch = min(100, args.clients - done)
        results = await asyncio.gather(*(one_reset() for _ in range(batch)), return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                errors.append(f"{type(r).__name__}: {r}")
            else:
                statuses[str(r)] = statuses.get(str(r), 0) + 1
        done += batch
    storm_seconds = round(time.monotonic() - start, 3)
    stop.set()
    echo = await asyncio.gather(*echo_tasks, return_exceptions=True)
    return {
        "statuses": statuses,
        "errors": errors[:10],
        "error_count": len(errors),
        "storm_seconds": storm_seconds,
        "echo": [e if isinstance(e, dict) else {"error": f"{type(e).__name__}: {e}"} for e in echo],
    }


# ---------------------------------------------------------------------------------------------
# Scenarios with the raw client.

RAW_FRAMES = {
    # Autobahn 6.3.1: a text frame whose payload is not UTF-8 (an encoded UTF-16 surrogate,
    # ED A0 80, in the middle of "κόσμε...edited") → 1007 (RFC 6455 §8.1).
    "invalid_utf8": lambda: build_frame(OP_TEXT, bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564")),
    # Autobahn 4.1.1: reserved non-control opcode 3 → 1002 (RFC 6455 §5.2).
    "reserved_opcode": lambda: build_frame(0x3, b""),
    # No Autobahn case (its fuzzing client always masks): a client frame without a mask → 1002
    # (RFC 6455 §5.1).
    "unmasked": lambda: build_frame(OP_TEXT, b"hello", masked=False),
}


def scenario_raw_frame(args):
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        conn.sock.sendall(RAW_FRAMES[args.frame]())
        result = conn.read_until_close()
        result["handshake_status"] = hs["status"]
        return result
    finally:
        conn.close()


def edited_headers(conn, args):
    """The default handshake headers with --plain (no handshake headers at all), --drop, --set
    and --pad-headers COUNT:SIZE (COUNT headers X-Pad-i of SIZE bytes each) applied."""
    if args.plain:
        headers = [("Host", conn.netloc)]
    else:
        headers = conn.default_headers()
    for name in args.drop or []:
        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
    for item in args.set or []:
        name, _, value = item.partition(":")
        name, value = name.strip(), value.strip()
        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
        headers.append((name, value))
    if args.pad_headers:
        count, _, size = args.pad_headers.partition(":")
        headers += [(f"X-Pad-{i}", "p" * int(size)) for i in range(int(count))]
    return headers


def request_target(conn, args):
    """--target (written as is, e.g. an absolute-form target), else the URL's path, then
    --pad-target N bytes of query appended."""
    target = args.target if args.target is not None else conn.path
    if args.pad_target:
        target += ("&" if "?" in target else "?") + "q=" + "t" * args.pad_target
    return target


def scenario_http(args):
    """A request written by hand: by default a handshake, with headers replaced (--set) or
    removed (--drop), or a plain GET (--plain); --target, --pad-target, --pad-headers and
    --version shape the request line and head. With --await-eof S, it then waits up to S seconds
    for the server to close the connection and reports closed_after / closed_within."""
    conn = RawConnection(args.url)
    try:
        headers = edited_headers(conn, args)
        try:
            conn.send_request(method=args.method, headers=headers, target=request_target(conn, args), version=args.version)
        except OSError as e:
            return {"send_error": str(e), "status": None}
        try:
            r = conn.read_response(read_body=True)
        except (TimeoutError, ConnectionResetError) as e:
            return {"status": None, "error": type(e).__name__}
        if args.await_eof is not None:
            closed, within, extra = conn.await_eof(args.await_eof)
            r["closed_after"] = closed
            r["closed_within"] = within
            r["bytes_after"] = len(extra)
        return r
    finally:
        conn.close()


def scenario_keepalive_upgrade(args):
    """A plain keep-alive GET of --first-path, answered; then, on the same connection, the
    WebSocket handshake for the URL's path, a text frame and a close. Reports both statuses, the
    echo and the close code."""
    conn = RawConnection(args.url)
    try:
        out = {}
        if args.together:
            # Both requests and the first frame in one write: the upgrade request is pipelined
            # behind the plain one, and the frame follows its head in the same segment.
            first_req = f"GET {args.first_path} HTTP/1.1\r\nHost: {conn.netloc}\r\n\r\n"
            lines = [f"GET {conn.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in conn.default_headers()] + ["", ""]
            conn.sock.sendall(first_req.encode("latin-1") + "\r\n".join(lines).encode("latin-1")
                              + build_frame(OP_TEXT, b"after keep-alive"))
        else:
            conn.send_request(headers=[("Host", conn.netloc)], target=args.first_path)
        first = conn.read_response(read_body=True)
        out["first_status"] = first["status"]
        out["first_body"] = first["body"]
        out["first_connection"] = first["headers"].get("connection", [])
        hs = conn.read_response(read_body=False) if args.together else conn.handshake()
        out["handshake_status"] = hs["status"]
        out["handshake_headers"] = hs["headers"]
        if hs["status"] != 101:
            return out
        if not args.together:
            conn.sock.sendall(build_frame(OP_TEXT, b"after keep-alive"))
        f = conn.read_frame(time.monotonic() + STEP)
        out["echoed"] = {"opcode": f[1], "payload": f[2].decode("utf-8", "replace")} if f is not None else None
        conn.sock.sendall(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
        out.update(conn.read_until_close())
        return out
    finally:
        conn.close()


def scenario_slow(args):
    """A client that never finishes its request (slowloris), by --mode:
    - idle: connects and sends nothing;
    - partial: sends half a request line ("GET /pa") and nothing more;
    - trickle: sends a request head one byte every --interval seconds.
    Waits up to --limit-seconds for the server's answer and close; reports the status (if any),
    the body, whether it was closed, when, and how many bytes were sent."""
    conn = RawConnection(args.url)
    start = time.monotonic()
    sent = 0
    try:
        if args.mode == "partial":
            conn.sock.sendall(b"GET /pa")
            sent = 7
        elif args.mode == "trickle":
            head = f"GET {conn.path} HTTP/1.1\r\nHost: {conn.netloc}\r\nX-Slow: " + "s" * 200 + "\r\n\r\n"
            data = head.encode("latin-1")
            for i in range(len(data)):
                if time.monotonic() - start > args.limit_seconds:
                    break
                r, _, _ = select.select([conn.sock], [], [], 0)
                if r:
                    break  # the server answered or closed
                try:
                    conn.sock.sendall(data[i:i + 1])
                except OSError:
                    break
                sent += 1
                time.sleep(args.interval)
        remaining = max(0.1, args.limit_seconds - (time.monotonic() - start))
        closed, _, extra = conn.await_eof(remaining)
        text = extra.decode("latin-1")
        status = None
        body = ""
        if text.startswith("HTTP/"):
            parts = text.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            body = text.partition("\r\n\r\n")[2]
        return {"status": status, "body": body, "response": text[:500], "closed": closed,
                "elapsed": round(time.monotonic() - start, 3), "bytes_sent": sent}
    finally:
        conn.close()


def scenario_same_segment(args):
    """The handshake request and a first masked text frame in one write (one TCP segment on
    loopback): the server must not lose the bytes that follow the request head. The client then
    waits for the echo before closing."""
    conn = RawConnection(args.url)
    try:
        headers = conn.default_headers()
        lines = [f"GET {conn.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers] + ["", ""]
        request = "\r\n".join(lines).encode("latin-1")
        conn.sock.sendall(request + build_frame(OP_TEXT, b"early bird"))
        hs = conn.read_response(read_body=False)
        echoed = None
        try:
            f = conn.read_frame(time.monotonic() + STEP)
            if f is not None:
                echoed = {"opcode": f[1], "payload": f[2].decode("utf-8", "replace")}
        except TimeoutError:
            pass
        conn.sock.sendall(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
        result = conn.read_until_close()
        result["handshake_status"] = hs["status"]
        result["echoed"] = echoed
        return result
    finally:
        conn.close()


def scenario_burst(args):
    """--messages text frames ("m0", "m1", ...) and then a close frame (--frame close) or a bad
    frame (--frame NAME from RAW_FRAMES), all in one write: the server must answer every message
    received before the close or the error, then close (RFC 6455 §5.5.1 ordering). Reports the
    texts received in order and the close code."""
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        payload = b"".join(build_frame(OP_TEXT, f"m{i}".encode()) for i in range(args.messages))
        if args.frame == "close" or args.frame is None:
            payload += build_frame(OP_CLOSE, struct.pack("!H", 1000))
        else:
            payload += RAW_FRAMES[args.frame]()
        conn.sock.sendall(payload)
        start = time.monotonic()
        deadline = start + STEP
        texts = []
        out = {"close_code": None, "eof": False, "texts": texts, "after_close": 0}
        while True:
            try:
                f = conn.read_frame(deadline)
            except (TimeoutError, ConnectionResetError) as e:
                out["error"] = type(e).__name__
                break
            if f is None:
                out["eof"] = True
                break
            _, op, data = f
            if out["close_code"] is not None:
                out["after_close"] += 1
            elif op == OP_TEXT:
                texts.append(data.decode("utf-8", "replace"))
            elif op == OP_CLOSE:
                out["close_code"] = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
        out["handshake_status"] = hs["status"]
        return out
    finally:
        conn.close()


def scenario_huge_head(args):
    """A request head far over any sane limit (--size bytes of one header): the server must
    answer with an error status (or close) rather than buffer it."""
    conn = RawConnection(args.url)
    try:
        headers = conn.default_headers() + [("X-Filler", "a" * args.size)]
        lines = [f"GET {conn.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers] + ["", ""]
        try:
            conn.sock.sendall("\r\n".join(lines).encode("latin-1"))
        except OSError as e:
            return {"send_error": str(e), "status": None}
        try:
            r = conn.read_response(read_body=True)
        except (TimeoutError, ConnectionResetError) as e:
            return {"status": None, "error": type(e).__name__}
        eof = False
        start = time.monotonic()
        try:
            conn.sock.settimeout(STEP)
            eof = conn.sock.recv(1) == b""
        except ConnectionResetError:
            eof = True
        except socket.timeout:
            eof = False  # still open after STEP seconds
        r["closed_after"] = eof
        r["closed_within"] = round(time.monotonic() - start, 3)
        return r
    finally:
        conn.close()


def scenario_pmd_raw(args):
    """permessage-deflate seen on the wire (RFC 7692): offers the extension by hand, sends one
    uncompressed and one compressed (RSV1, raw DEFLATE, 00 00 ff ff tail removed) text message,
    and reports the server's agreed header and, for each echo, its RSV1 bit and what it inflates
    to (with the tail put back)."""
    import zlib
    conn = RawConnection(args.url)
    try:
        headers = conn.default_headers() + [("Sec-WebSocket-Extensions", args.offer or "permessage-deflate; client_max_window_bits")]
        conn.send_request(headers=headers)
        hs = conn.read_response(read_body=False)
        out = {"status": hs["status"], "extensions": hs["headers"].get("sec-websocket-extensions")}
        text = ("{\"typ\": \"message\", \"from\": \"alice\", \"text\": \"hello hello hello\"} " * 40).encode()
        inflater = zlib.decompressobj(-15)
        echoes = []
        deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
        for compressed in (False, True):
            if compressed:
                payload = deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH)
                assert payload.endswith(b"\x00\x00\xff\xff")
                conn.sock.sendall(build_frame(OP_TEXT, payload[:-4], rsv=4))  # rsv=4: RSV1
            else:
                conn.sock.sendall(build_frame(OP_TEXT, text))
            # RSV1 is in the first byte, which read_frame does not return: peek at it.
            deadline = time.monotonic() + STEP
            while len(conn.buf) < 1:
                conn._fill(deadline)
            rsv1 = bool(conn.buf[0] & 0x40)
            f = conn.read_frame(deadline)
            if f is None:
                echoes.append({"eof": True})
                break
            body = f[2]
            if rsv1:
                body = inflater.decompress(body + b"\x00\x00\xff\xff")
            echoes.append({"rsv1": rsv1, "wire_length": len(f[2]), "same": body == text, "opcode": f[1]})
        out["echoes"] = echoes
        out["sent_length"] = len(text)
        conn.sock.sendall(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
        out["close"] = conn.read_until_close()
        return out
    finally:
        conn.close()


async def scenario_pmd_ws(args):
    """Compression with Python's websockets as the independent peer: its permessage-deflate,
    with the parameters given in --offer (comma-separated: server_no_context_takeover,
    client_no_context_takeover, client_max_window_bits=N), then an echo of small and large
    text and binary messages."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    kw = {}
    for item in (args.offer or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == "server_no_context_takeover":
            kw["server_no_context_takeover"] = True
        elif item == "client_no_context_takeover":
            kw["client_no_context_takeover"] = True
        elif item.startswith("client_max_window_bits="):
            kw["client_max_window_bits"] = int(item.split("=")[1])
        elif item.startswith("server_max_window_bits="):
            kw["server_max_window_bits"] = int(item.split("=")[1])
    factory = ClientPerMessageDeflateFactory(**kw)
    async with await ws_connect(args.url, compression=None, extensions=[factory], ping_interval=None) as ws:
        agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
        negotiated = [repr(e) for e in ws.protocol.extensions]
        def big(i):
            return "{\"n\": %d, \"text\": \"the quick brown fox jumps over the lazy dog\"} " % i * 60
        results = []
        for i in range(6):
            msg = big(i) if i % 2 == 0 else "short %d" % i
            await ws.send(msg)
            results.append((await asyncio.wait_for(ws.recv(), STEP)) == msg)
        data = bytes(range(256)) * 20
        await ws.send(data)
        results.append((await asyncio.wait_for(ws.recv(), STEP)) == data)
        await ws.close()
        return {"agreed": agreed, "negotiated": negotiated, "echo_ok": results, "close": close_info(ws)}


async def scenario_pmd_keeps_context(args):
    """A client that ignores the server's client_no_context_takeover (shared mode) among well-behaved
    ones: --clients Python websockets connections echo a compressed text, then a raw client offers
    permessage-deflate, sends a compressed text and then the same text again from the same zlib
    deflater, context kept (the second refers back into the first), and reads until the close; then
    every good connection echoes three more compressed texts and closes with 1000. The good ones
    are opened first so that, with NIO's round-robin, one shares the bad one's event-loop thread
    (on up to --clients threads)."""
    import random
    import zlib
    rng = random.Random(17)  # varied words: the first message does not shrink to almost nothing alone
    text = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 9)))
                    for _ in range(500))
    good = [await ws_connect(args.url, ping_interval=None) for _ in range(args.clients)]
    out = {"good_agreed": good[0].response.headers.get("Sec-WebSocket-Extensions")}

    async def echo_all(n):
        ok = []
        for ws in good:
            for i in range(n):
                msg = text + str(i)
                await ws.send(msg)
                ok.append((await asyncio.wait_for(ws.recv(), STEP)) == msg)
        return ok

    out["good_before"] = await echo_all(1)

    def bad():
        conn = RawConnection(args.url)
        try:
            headers = conn.default_headers() + [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
            conn.send_request(headers=headers)
            hs = conn.read_response(read_body=False)
            r = {"status": hs["status"], "agreed": hs["headers"].get("sec-websocket-extensions")}
            deflater = zlib.compressobj(1, zlib.DEFLATED, -15)  # never reset: context kept
            first = deflater.compress(text.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
            second = deflater.compress(text.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
            r["first_length"], r["second_length"] = len(first) - 4, len(second) - 4
            conn.sock.sendall(build_frame(OP_TEXT, first[:-4], rsv=4))
            f = conn.read_frame(time.monotonic() + STEP)
            r["first_echo_opcode"] = None if f is None else f[1]
            conn.sock.sendall(build_frame(OP_TEXT, second[:-4], rsv=4))
            r["close"] = conn.read_until_close()
            return r
        finally:
            conn.close()

    out["bad"] = await asyncio.to_thread(bad)
    out["good_after"] = await echo_all(3)
    for ws in good:
        await ws.close()
    out["good_close_codes"] = [ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None for ws in good]
    return out


def scenario_silent(args):
    """Handshakes, then never writes again (no pong, no close answer), and only watches: the
    frames the server sends and when the connection ends. Reading does not send anything, so the
    server cannot tell this client from one that does not read at all."""
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        result = conn.read_until_close(timeout=args.seconds, answer_pings=False)
        result["pings"] = sum(1 for f in result["frames"] if f["opcode"] == OP_PING)
        result["handshake_status"] = hs["status"]
        return result
    finally:
        conn.close()


def write_until_stalled(sock, chunk, args):
    """Writes `chunk` over and over on the non-blocking `sock` without reading, until the socket has
    taken nothing for --stall seconds, --limit-seconds or --limit-bytes have passed, or a write
    failed. Returns (bytes written, whole chunks written, stalled, error or None, start time)."""
    total = chunks = 0
    pending = memoryview(chunk)
    start = time.monotonic()
    last_progress = start
    stalled, error = False, None
    while True:
        now = time.monotonic()
        if now - last_progress >= args.stall:
            stalled = True
            break
        if now - start > args.limit_seconds or total > args.limit_bytes:
            break
        try:
            n = sock.send(pending)
        except BlockingIOError:
            select.select([], [sock], [], 0.05)
            continue
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
            break
        if n > 0:
            total += n
            last_progress = time.monotonic()
            pending = pending[n:]
            if not pending:
                chunks += 1
                pending = memoryview(chunk)
    return total, chunks, stalled, error, start


def scenario_flood(args):
    """Writes masked 64 KB binary frames without reading, in non-blocking mode, until the socket
    has refused to take more for --stall seconds; reports the bytes the kernel accepted. If the
    server stops reading (backpressure), this is bounded by the socket buffers."""
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        frame = build_frame(OP_BINARY, os.urandom(args.frame_size))
        sock = conn.sock
        sock.setblocking(False)
        total, frames, stalled, error, start = write_until_stalled(sock, frame, args)
        if error is not None:
            return {"handshake_status": 101, "total_bytes": total, "frames": frames, "error": error}
        return {
            "handshake_status": 101,
            "total_bytes": total,
            "frames": frames,
            "stalled": stalled,
            "seconds": round(time.monotonic() - start, 3),
            "sndbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        }
    finally:
        conn.close()


def scenario_fill_then(args):
    """Against a handler that never reads: sends --messages text frames ("m0", ...), one write
    each, so the server's inbox fills; waits --pause seconds; then --then close: a ping ("p")
    and a close frame (--code), and reads until the server's close and EOF (answering pings);
    or --then silent: writes nothing more (no pong) and only watches until the server closes.
    Waits at most --seconds. Reports the server's close code and when it came (seconds after
    the pause), whether the ping got its pong, and the frames seen."""
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        for i in range(args.messages):
            conn.sock.sendall(build_frame(OP_TEXT, f"m{i}".encode()))
        time.sleep(args.pause)
        if args.then == "close":
            conn.sock.sendall(build_frame(OP_PING, b"p"))
            conn.sock.sendall(build_frame(OP_CLOSE, struct.pack("!H", args.code)))
            result = conn.read_until_close(timeout=args.seconds, answer_pings=True)
        else:
            result = conn.read_until_close(timeout=args.seconds, answer_pings=False)
        frames = result["frames"]
        result["pong"] = any(f["opcode"] == OP_PONG for f in frames)
        result["pings"] = sum(1 for f in frames if f["opcode"] == OP_PING)
        result["texts"] = sum(1 for f in frames if f["opcode"] == OP_TEXT)
        result["handshake_status"] = hs["status"]
        return result
    finally:
        conn.close()


def small_rcvbuf_connection(url, rcvbuf):
    """A RawConnection whose socket has a small receive buffer, set before connecting (so the
    kernel does not autotune it): a client that stops reading stops the server's writes soon."""
    parts = urlsplit(url)
    conn = RawConnection.__new__(RawConnection)
    conn.host, conn.port, conn.netloc = parts.hostname, parts.port, parts.netloc
    conn.path = (parts.path or "/") + (("?" + parts.query) if parts.query else "")
    conn.buf = b""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(STEP)
    sock.connect((conn.host, conn.port))
    conn.sock = sock
    return conn


def drain_to_eof(conn, timeout):
    """Reads and parses frames until EOF, a reset or `timeout`; reports the frame counts by
    opcode, the close code if a close frame came, and how the stream ended."""
    deadline = time.monotonic() + timeout
    counts, close_code, end = {}, None, "timeout"
    try:
        while True:
            f = conn.read_frame(deadline)
            if f is None:
                end = "eof"
                break
            op = f[1]
            counts[str(op)] = counts.get(str(op), 0) + 1
            if op == OP_CLOSE and close_code is None:
                close_code = struct.unpack("!H", f[2][:2])[0] if len(f[2]) >= 2 else 1005
    except TimeoutError:
        end = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    return {"frames_by_opcode": counts, "close_code": close_code, "end": end}


def scenario_ping_flood(args):
    """Pings (125-byte payloads) written without ever reading, in non-blocking mode, until the
    socket has taken nothing for --stall seconds (or --limit-seconds / --limit-bytes); the
    receive buffer is small (--rcvbuf), so the server's pongs back up at once. Then still does
    not read for --seconds, and finally reads to see whether the server ended the connection
    meanwhile (EOF or reset within 2 s; a server that did not would keep sending pongs and
    pings)."""
    conn = small_rcvbuf_connection(args.url, args.rcvbuf)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        batch = b"".join(build_frame(OP_PING, b"x" * 125) for _ in range(500))
        sock = conn.sock
        sock.setblocking(False)
        total, _, stalled, error, start = write_until_stalled(sock, batch, args)
        flood_seconds = round(time.monotonic() - start, 3)
        time.sleep(args.seconds)
        sock.setblocking(True)
        after = drain_to_eof(conn, 2.0)
        return {"handshake_status": 101, "total_bytes": total, "pings": total // 131, "stalled": stalled,
                "flood_seconds": flood_seconds, "error": error, "after": after}
    finally:
        conn.close()


def scenario_close_unread(args):
    """With a small receive buffer (--rcvbuf): one text frame (--message, default "go") and then
    a close frame (--frame close, code --code) or a bad frame (--frame reserved_opcode) in one
    write; then reads nothing for --seconds, so the server's answer (its close frame, behind
    whatever it sent for "go") cannot be written. Finally reads to EOF (2 s at most)."""
    conn = small_rcvbuf_connection(args.url, args.rcvbuf)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        first = build_frame(OP_TEXT, (args.message or "go").encode())
        last = build_frame(OP_CLOSE, struct.pack("!H", args.code)) if args.frame == "close" else RAW_FRAMES[args.frame]()
        conn.sock.sendall(first + last)
        time.sleep(args.seconds)
        after = drain_to_eof(conn, 2.0)
        return {"handshake_status": 101, "after": after}
    finally:
        conn.close()


def scenario_stop_mid_message(args):
    """With a small receive buffer (--rcvbuf): reads --size bytes of what the server sends (the
    start of a large message), then stops reading for --seconds, then reads to EOF (2 s at
    most). Reports the bytes read before stopping and how the stream ended."""
    conn = small_rcvbuf_connection(args.url, args.rcvbuf)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        got = len(conn.buf)
        deadline = time.monotonic() + STEP
        while got < args.size:
            if not conn._fill(deadline):
                break
            got = len(conn.buf)
        first = conn.buf[:2]
        conn.buf = b""
        time.sleep(args.seconds)
        end, more = "timeout", 0
        conn.sock.settimeout(2.0)
        try:
            while True:
                data = conn.sock.recv(1 << 20)
                if not data:
                    end = "eof"
                    break
                more += len(data)
        except socket.timeout:
            end = "timeout"
        except (ConnectionResetError, BrokenPipeError):
            end = "reset"
        return {"handshake_status": 101, "read_before_stop": got, "first_bytes": first.hex(), "read_after": more, "end": end}
    finally:
        conn.close()


def scenario_no_read(args):
    """Handshakes, then neither reads nor writes for --seconds, then closes the socket."""
    conn = RawConnection(args.url)
    try:
        hs = conn.handshake()
        if hs["status"] != 101:
            return {"handshake": hs}
        rcvbuf = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        time.sleep(args.seconds)
        return {"handshake_status": 101, "slept": args.seconds, "rcvbuf": rcvbuf}
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------

ASYNC = {
    "reset_storm": scenario_reset_storm,
    "pmd_ws": scenario_pmd_ws,
    "pmd_keeps_context": scenario_pmd_keeps_context,
    "echo": scenario_echo,
    "client_close": scenario_client_close,
    "await_close": scenario_await_close,
    "subprotocol": scenario_subprotocol,
    "too_big": scenario_too_big,
    "idle": scenario_idle,
    "many": scenario_many,
    "stream": scenario_stream,
}
SYNC = {
    "raw_frame": scenario_raw_frame,
    "http": scenario_http,
    "keepalive_upgrade": scenario_keepalive_upgrade,
    "slow": scenario_slow,
    "silent": scenario_silent,
    "same_segment": scenario_same_segment,
    "burst": scenario_burst,
    "pmd_raw": scenario_pmd_raw,
    "huge_head": scenario_huge_head,
    "flood": scenario_flood,
    "no_read": scenario_no_read,
    "fill_then": scenario_fill_then,
    "ping_flood": scenario_ping_flood,
    "close_unread": scenario_close_unread,
    "stop_mid_message": scenario_stop_mid_message,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(list(ASYNC) + list(SYNC)))
    parser.add_argument("url")
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--code", type=int, default=1000)
    parser.add_argument("--message")
    parser.add_argument("--offer", default="")
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--frame", choices=sorted(list(RAW_FRAMES) + ["close"]))
    parser.add_argument("--method", default="GET")
    parser.add_argument("--set", action="append", metavar="'Name: value'")
    parser.add_argument("--drop", action="append", metavar="Name")
    parser.add_argument("--plain", action="store_true", help="http: a plain request, no handshake headers")
    parser.add_argument("--target", help="http: the request target as written (e.g. absolute-form)")
    parser.add_argument("--pad-target", type=int, default=0, metavar="N")
    parser.add_argument("--pad-headers", metavar="COUNT:SIZE")
    parser.add_argument("--version", default="HTTP/1.1")
    parser.add_argument("--await-eof", type=float, metavar="SECONDS")
    parser.add_argument("--first-path", default="/plain")
    parser.add_argument("--together", action="store_true", help="keepalive_upgrade: everything in one write")
    parser.add_argument("--mode", choices=["idle", "partial", "trickle"], default="idle")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--frame-size", type=int, default=65536)
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--rcvbuf", type=int, default=4096, help="the client's SO_RCVBUF where a scenario sets it")
    parser.add_argument("--then", choices=["close", "silent"], default="close", help="fill_then: what follows the messages")
    parser.add_argument("--pause", type=float, default=0.3, help="fill_then: seconds between the messages and what follows")
    parser.add_argument("--limit-seconds", type=float, default=10.0)
    parser.add_argument("--limit-bytes", type=int, default=1 << 30)
    args = parser.parse_args()

    out = {"scenario": args.scenario, "websockets_version": websockets.__version__}
    try:
        if args.scenario in ASYNC:
            result = asyncio.run(asyncio.wait_for(ASYNC[args.scenario](args), max(30, args.limit_seconds)))
        else:
            result = SYNC[args.scenario](args)
        out.update(result)
    except Exception as e:
        # An observation like any other: the Swift test reports it.
        out["exception"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
