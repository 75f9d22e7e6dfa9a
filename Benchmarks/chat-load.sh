#!/bin/sh
# How many messages per second one sockets-chat room of 200 clients handles.
#
#   Benchmarks/chat-load.sh [extra chat_load.py options, e.g. --rates 50,100 --duration 5]
#
# Builds sockets-chat in release mode, starts it on a free port (--quiet: no per-connection log
# lines) and runs Tests/Interop/chat_load.py against it: 200 Python websockets clients (in 2
# processes) join one room; after a warm-up and 20 latency probes on the idle room, the clients
# together send messages at a fixed room-wide rate for 8 s, one round per rate (25, 50, 100, ...
# messages/s). A round keeps up when every message reaches each of the 199 other clients exactly
# once and the p99 send-to-recipient latency stays under 1 s; the rounds stop at the first rate
# that does not. Prints one line per round and the highest rate that kept up on stderr, and the
# whole result as JSON on stdout.
#
# The clients run on the same machine as the server, so the figure is for the whole system
# (server + 200 Python clients sharing the cores). Needs python3 with websockets.
set -eu
cd "$(dirname "$0")/.."
swift build -c release --product sockets-chat >&2
BIN="$(swift build -c release --show-bin-path)/sockets-chat"
exec python3 Tests/Interop/chat_load.py --server "$BIN" --server-arg=--quiet \
    --clients 200 --processes 2 --rates 25,50,100,150,200,300,400,600,800 --duration 8 --human "$@"
