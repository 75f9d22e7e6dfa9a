#!/usr/bin/env python3
"""Server memory per WebSocket connection, as a new user would measure it (Benchmarks/pmd-memory.sh).

Usage: pmd_memory.py URL SERVER_PID [--connections N] [--settle S]

Opens N connections with Python's `websockets` and its default permessage-deflate offer
("permessage-deflate; client_max_window_bits", window 15, memLevel 5 on its side), reads the
server's VmRSS from /proc/SERVER_PID/status before any connection, after every handshake, and
after a mixed load (on every connection, 200 connections at a time, the messages in LOAD: 100 B to
64 KiB, text and binary, each echo awaited and compared), then closes them all. With --mallinfo
it also reads glibc's bytes in live allocations at the same three points (the server preloads
Benchmarks/mallinfo-shim.c). Prints one JSON object: the three RSS figures in KiB, the growth
per connection in bytes, the agreed extension header, and how many echoes came back equal. It
never decides pass or fail.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

from websockets.asyncio.client import connect

# The mixed load, per connection: (kind, size). Text is JSON-like (compresses ~5-10x); binary is
# half random bytes and half a repeated pattern (compresses ~2x), so neither side's deflater is
# idle and every connection's inflater sees messages bigger than its window.
LOAD = [("text", 100), ("binary", 1024), ("text", 4096), ("binary", 16384), ("text", 65536), ("binary", 300)]


def text_of(size, seed):
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    parts, n = [], 0
    while n < size:
        item = '{"id": %d, "user": "%s", "text": "%s %s", "ok": true}, ' % (
            rng.randrange(100000), rng.choice(words), rng.choice(words), rng.choice(words))
        parts.append(item)
        n += len(item)
    return "".join(parts)[:size]


def binary_of(size, seed):
    rng = random.Random(seed)
    half = size // 2
    return bytes(rng.getrandbits(8) for _ in range(half)) + bytes(i % 64 for i in range(size - half))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def in_use_bytes(pid, path):
    """glibc's bytes in live allocations (mallinfo2, every arena), from the server's preloaded
    Benchmarks/mallinfo-shim.c: signal it, then read the line it appended. None without --mallinfo."""
    if not path:
        return None
    before = os.path.getsize(path) if os.path.exists(path) else 0
    os.kill(pid, signal.SIGUSR2)
    for _ in range(100):
        time.sleep(0.05)
        if os.path.exists(path) and os.path.getsize(path) > before:
            break
    with open(path) as f:
        last = f.read().splitlines()[-1]
    return int(dict(kv.split("=") for kv in last.split())["in_use"])


async def main(args):
    payloads = [text_of(size, i) if kind == "text" else binary_of(size, i) for i, (kind, size) in enumerate(LOAD)]
    await asyncio.sleep(args.settle)
    rss0 = rss_kib(args.pid)
    m0 = in_use_bytes(args.pid, args.mallinfo)
    sockets = []
    opening = asyncio.Semaphore(64)  # stay under the listen backlog

    async def open_one():
        async with opening:
            ws = await connect(args.url, ping_interval=None, max_size=None, open_timeout=60)
            sockets.append(ws)

    t0 = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(args.connections)))
    opened = time.monotonic() - t0
    agreed = sockets[0].response.headers.get("Sec-WebSocket-Extensions")
    await asyncio.sleep(args.settle)
    rss1 = rss_kib(args.pid)
    m1 = in_use_bytes(args.pid, args.mallinfo)

    loading = asyncio.Semaphore(200)
    equal = 0

    async def load(ws):
        nonlocal equal
        async with loading:
            for p in payloads:
                await ws.send(p)
                if await asyncio.wait_for(ws.recv(), 60) == p:
                    equal += 1

    t0 = time.monotonic()
    await asyncio.gather(*(load(ws) for ws in sockets))
    loaded = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    rss2 = rss_kib(args.pid)
    m2 = in_use_bytes(args.pid, args.mallinfo)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    n = args.connections
    return {
        "connections": n,
        "agreed": agreed,
        "echoes_equal": equal,
        "echoes_expected": n * len(LOAD),
        "rss_kib": [rss0, rss1, rss2],
        "per_conn_handshake_bytes": round((rss1 - rss0) * 1024 / n),
        "per_conn_load_bytes": round((rss2 - rss0) * 1024 / n),
        "in_use_bytes": [m0, m1, m2],
        "per_conn_in_use_handshake_bytes": None if m0 is None else round((m1 - m0) / n),
        "per_conn_in_use_load_bytes": None if m0 is None else round((m2 - m0) / n),
        "seconds_open": round(opened, 1),
        "seconds_load": round(loaded, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("pid", type=int)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of quiet before each RSS reading")
    parser.add_argument("--mallinfo", metavar="FILE", help="the server preloads mallinfo-shim.c writing to FILE")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args))))
    sys.exit(0)
