#!/usr/bin/env python3
"""Interop server for the Sockets client tests (Tests/SocketsTests/ClientTests.swift).

Usage: server.py [--cert FILE --key FILE]

Starts two Python `websockets` servers on 127.0.0.1 (free ports) and prints one JSON line,
{"port": P, "no_takeover_port": Q}, then serves until its standard input closes. The first
server uses websockets' default permessage-deflate (context takeover both ways, windows of 12
bits); the second agrees permessage-deflate with server_no_context_takeover and
client_no_context_takeover. Paths (both servers):

  /echo           echoes every message; the text "?info" is answered with a JSON object of what
                  the server saw in the handshake (extensions, subprotocol, a header)
  /fragments      sends the text "fragmented ✓" in three fragments, then echoes
  /ping           pings the client, then sends "pong received" once the pong arrives
  /close/<code>   closes with <code> and the reason "server bye" right after the handshake
  /subprotocol    (with subprotocols chat.v2, chat.v1) sends the chosen subprotocol as text
  /refuse         refuses the handshake with 403 and the body "no entry"
  /record         records the client's close code and reason; /report sends what was recorded
                  (waiting up to 5 s for it)

It never decides pass or fail: the Swift test does. Exit status 3 when `websockets` is missing.
"""

import argparse
import asyncio
import json
import ssl
import sys

try:
    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosed
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.http11 import Response
except ImportError as e:  # pragma: no cover
    print(f"websockets missing: {e}", file=sys.stderr)
    sys.exit(3)

recorded = {}


def refuse(connection, request):
    if request.path == "/refuse":
        return Response(403, "Forbidden", Headers([("Content-Length", "8")]), b"no entry")
    return None


def select_subprotocol(connection, subprotocols):
    if connection.request.path != "/subprotocol":
        return None
    for p in ("chat.v2", "chat.v1"):
        if p in subprotocols:
            return p
    return None


async def handler(ws):
    path = ws.request.path
    if path == "/echo":
        async for message in ws:
            if message == "?info":
                await ws.send(json.dumps({
                    "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
                    "subprotocol": ws.subprotocol,
                    "x_test": ws.request.headers.get("X-Test"),
                    "offer": ws.request.headers.get("Sec-WebSocket-Extensions"),
                }))
            else:
                await ws.send(message)
    elif path == "/fragments":
        await ws.send(["frag", "mented", " ✓"])
        async for message in ws:
            await ws.send(message)
    elif path == "/ping":
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 10)
        await ws.send("pong received")
        async for _ in ws:
            pass
    elif path.startswith("/close/"):
        await ws.close(int(path.split("/")[2]), "server bye")
    elif path == "/subprotocol":
        await ws.send(ws.subprotocol or "")
        async for _ in ws:
            pass
    elif path == "/record":
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:  # a close code other than 1000/1001 ends the loop so
            pass
        finally:
            recorded["code"] = ws.close_code
            recorded["reason"] = ws.close_reason
    elif path == "/report":
        for _ in range(250):  # the /record handler may still be finishing its close
            if recorded:
                break
            await asyncio.sleep(0.02)
        await ws.send(json.dumps(recorded))
        async for _ in ws:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    common = dict(process_request=refuse, select_subprotocol=select_subprotocol,
                  subprotocols=["chat.v2", "chat.v1"], ssl=context, max_size=2**20, ping_interval=None)
    takeover = await serve(handler, "127.0.0.1", 0, **common)
    no_takeover = await serve(handler, "127.0.0.1", 0, extensions=[ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True)], **common)
    ports = {
        "port": takeover.sockets[0].getsockname()[1],
        "no_takeover_port": no_takeover.sockets[0].getsockname()[1],
    }
    print(json.dumps(ports), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
