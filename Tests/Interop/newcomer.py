#!/usr/bin/env python3
"""Peer for the newcomer tests (Tests/SocketsTests/NewcomerTests.swift, NIOIntegrationTests.swift).

Usage: newcomer.py <scenario> <url> [options]; prints ONE JSON object with what it observed and
exits 0 (3 when `websockets` is missing). The Swift tests decide pass or fail.

Scenarios:
- talk: Python's `websockets` client sends --send messages (text; "b:<hex>" for binary), reads
  --expect messages, then closes with --close/--reason, or waits for the server's close.
- silent: a raw client that completes the handshake, then reads for --seconds and never answers
  a ping; reports the frames it saw.
- status: a raw handshake (with --origin, or the same-host origin) and the HTTP response.
- http: a plain GET and the response.
- example: starts the examples/nio-server binary (the url argument is its path; --typed passes
  on), and reports a JSON chat exchange, a refused origin, a plain GET, a 404 and an upgrade
  request for a path without a route.
"""

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import RawConnection, close_info, origin_of, STEP  # noqa: E402

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as e:  # pragma: no cover
    print(f"newcomer.py: the Python package 'websockets' is required ({e})", file=sys.stderr)
    sys.exit(3)


async def talk(args):
    out = {"received": []}
    async with connect(args.url, origin=origin_of(args.url), open_timeout=STEP, close_timeout=STEP,
                       max_size=None) as ws:
        for m in args.send:
            await ws.send(bytes.fromhex(m[2:]) if m.startswith("b:") else m)
        try:
            for _ in range(args.expect):
                m = await asyncio.wait_for(ws.recv(), STEP)
                out["received"].append({"binary": m.hex()} if isinstance(m, bytes) else m)
        except (ConnectionClosed, asyncio.TimeoutError) as e:
            out["recv_ended"] = type(e).__name__
        if args.close is not None:
            await ws.close(code=args.close, reason=args.reason)
        else:
            try:
                await asyncio.wait_for(ws.wait_closed(), STEP)
            except asyncio.TimeoutError:
                out["server_did_not_close"] = True
    out["close"] = close_info(ws)
    return out


def silent(args):
    c = RawConnection(args.url)
    r = c.handshake()
    out = {"status": r["status"], "frames": []}
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            f = c.read_frame(deadline)
        except (TimeoutError, OSError):
            break
        if f is None:
            break
        fin, opcode, payload = f
        entry = {"opcode": opcode, "length": len(payload)}
        if opcode == 0x8 and len(payload) >= 2:
            entry["code"] = int.from_bytes(payload[:2], "big")
            entry["reason"] = payload[2:].decode("utf-8", "replace")
        out["frames"].append(entry)
        if opcode == 0x8:
            break
    return out


def status(args, method="GET", version=None):
    c = RawConnection(args.url)
    headers = c.default_headers()
    if args.origin is not None:
        headers = [(k, v) for k, v in headers if k != "Origin"] + [("Origin", args.origin)]
    if version is not None:
        headers = [(k, v) for k, v in headers if k != "Sec-WebSocket-Version"] + [("Sec-WebSocket-Version", version)]
    c.send_request(method=method, headers=headers)
    r = c.read_response()
    return {"status": r["status"], "body": r["body"], "headers": r["headers"]}


def http(args):
    c = RawConnection(args.url)
    c.send_request(headers=[("Host", c.netloc), ("Connection", "close")])
    r = c.read_response()
    return {"status": r["status"], "body": r["body"]}


def example(args):
    import re
    import subprocess
    from chat_server import _die_with_parent
    cmd = [args.url, "--port", "0"] + (["--typed"] if args.typed else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on http://([^\s]+)", line)
        if not m:
            return {"exception": f"no listening line: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"}
        base = m.group(1)
        out = {"listening": line.strip()}
        ns = argparse.Namespace(url=f"ws://{base}/chat", send=['{"user":"ann","text":"hello"}'], expect=1,
                                close=1000, reason="")
        out["chat"] = asyncio.run(talk(ns))
        out["refused"] = status(argparse.Namespace(url=f"ws://{base}/chat", origin="http://evil.example"))
        out["root"] = http(argparse.Namespace(url=f"http://{base}/"))
        out["missing"] = http(argparse.Namespace(url=f"http://{base}/nope"))
        out["upgrade_missing"] = status(argparse.Namespace(url=f"ws://{base}/nope", origin=None))
        out["bad_version"] = status(argparse.Namespace(url=f"ws://{base}/chat", origin=None), version="12")
        out["post"] = status(argparse.Namespace(url=f"ws://{base}/chat", origin=None), method="POST")
        # The server still works after all that.
        ns.send = ['{"user":"bob","text":"again"}']
        out["chat_again"] = asyncio.run(talk(ns))
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["talk", "silent", "status", "http", "example"])
    p.add_argument("url")
    p.add_argument("--send", action="append", default=[])
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--close", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--origin")
    p.add_argument("--typed", action="store_true")
    args = p.parse_args()
    try:
        if args.scenario == "talk":
            out = asyncio.run(talk(args))
        else:
            out = {"silent": silent, "status": status, "http": http, "example": example}[args.scenario](args)
    except Exception as e:  # reported, not raised: the Swift test decides
        out = {"exception": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
