#!/usr/bin/env python3
"""What each compressor window costs on the wire: zlib level 1 raw deflate (as CompressionSettings'
level 1, memLevel = windowBits - 7), one deflater per connection with context takeover and a sync
flush per message, over two sets of JSON messages (random keys, words, numbers and ids, fixed
seed): 300 chat-sized messages of 300 B-2 KiB and 20 of 16-64 KiB. Prints compressed / original
bytes per window, and relative to window 15. Used to choose CompressionSettings.default
(Benchmarks/RESULTS-pmd-memory.md).

  .venv/bin/python3 Benchmarks/pmd_window_ratio.py
"""
import json
import random
import zlib

rng = random.Random(3)
KEYS = ["id", "user_id", "created_at", "updated_at", "price", "quantity", "status", "title", "description", "tags",
        "lat", "lon", "score", "rank", "country", "city", "email", "session", "version", "flags"]
WORDS = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 10))) for _ in range(2000)]


def obj():
    o = {}
    for k in rng.sample(KEYS, 12):
        r = rng.random()
        if r < 0.3:
            o[k] = rng.randrange(10**9)
        elif r < 0.5:
            o[k] = round(rng.uniform(-180, 180), 6)
        else:
            o[k] = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 8)))
    o["uuid"] = "%032x" % rng.getrandbits(128)
    return o


def message(n):
    items, size = [], 0
    while size < n:
        item = json.dumps(obj())
        items.append(item)
        size += len(item) + 1
    return ("[" + ",".join(items) + "]").encode()


SETS = {
    "JSON 300 B-2 KiB (300 messages)": [message(rng.randrange(300, 2000)) for _ in range(300)],
    "JSON 16-64 KiB (20 messages)": [message(rng.randrange(16384, 65536)) for _ in range(20)],
}

for name, messages in SETS.items():
    original = sum(map(len, messages))
    ratios = {}
    for bits in range(9, 16):
        d = zlib.compressobj(1, zlib.DEFLATED, -bits, bits - 7)
        sent = sum(len(d.compress(m) + d.flush(zlib.Z_SYNC_FLUSH)) - 4 for m in messages)
        ratios[bits] = sent / original
    print(f"{name}, {original} bytes")
    for bits, r in ratios.items():
        print(f"  window {bits:2d}: {r:.3f} of the original, {r / ratios[15]:.3f}x window 15's bytes")
