#!/usr/bin/env python3
"""python-echo: the Python `websockets` peer of Benchmarks/run-echo-deflate.sh.

An echo server on websockets' asyncio API (`websockets.asyncio.server.serve`), every path, any
Origin, with permessage-deflate:
  default                 websockets' own default compression (serve(compression="deflate"):
                          window 12 bits both ways, memLevel 5, zlib's default level), both sides
                          keeping their context;
  --no-context-takeover   the same settings, but the server resets its compressor after every
                          message and asks the client to do the same (server_no_context_takeover
                          and client_no_context_takeover, as sockets-echo --compression shared and
                          hb-echo --no-context-takeover state).

    python-echo.py [--host 127.0.0.1] [--port 9004] [--no-context-takeover]

Run it with the Python of the repository's .venv (scripts/deps.sh installs websockets there).
"""
import argparse
import asyncio

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:  # the load generator closes while messages are still in flight
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9004)
    parser.add_argument("--no-context-takeover", action="store_true")
    parser.add_argument("--max-message-size", type=int, default=1 << 20)
    args = parser.parse_args()
    if args.no_context_takeover:
        # websockets' defaults (enable_server_permessage_deflate) plus both no_context_takeover.
        options = dict(compression=None, extensions=[ServerPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True,
            server_max_window_bits=12, client_max_window_bits=12,
            compress_settings={"memLevel": 5})])
    else:
        options = dict(compression="deflate")
    async with serve(echo, args.host, args.port, max_size=args.max_message_size, **options) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
