#!/usr/bin/env python3
"""Python's websockets client against a Sockets wss:// server (Tests/SocketsTests/ClientTests.swift).

Usage: tls_client.py <wss-url> <ca.pem>

Connects trusting only the given CA, with permessage-deflate (websockets' default offer), sends
a compressible text, reads the echo, closes with 4011 and prints one JSON object: the echo, the
agreed extensions and the close code the server answered. Exit status 3 when websockets is missing.
"""

import asyncio
import json
import ssl
import sys
from urllib.parse import urlsplit

try:
    from websockets.asyncio.client import connect
except ImportError as e:  # pragma: no cover
    print(f"websockets missing: {e}", file=sys.stderr)
    sys.exit(3)


async def main(url, ca):
    context = ssl.create_default_context(cafile=ca)
    async with connect(url, ssl=context, additional_headers={"Origin": "https://" + urlsplit(url).netloc}) as ws:
        await ws.send("python secure " * 100)
        echo = await ws.recv()
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        await ws.close(4011, "python bye")
        print(json.dumps({"echo": echo, "extensions": extensions, "close_code": ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
