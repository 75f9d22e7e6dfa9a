#!/usr/bin/env bash
# Builds the Hummingbird example (its own package: a first build takes minutes, so CI does not run
# this) and drives it with Tests/Interop/newcomer.py: a JSON message through the Sockets route, a
# refused origin (403 with the reason), the router's own answers (200, 404), an upgrade request
# for a path without a route (the router's 404), and a second WebSocket connection. Prints the
# peer's report and "N passed, M failed"; exits 0 only if every check passed.
#
#   examples/hummingbird-server/check.sh      # from any directory; needs python3 with websockets
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
scratch="$root/.build-hb"
swift build --package-path "$here" --scratch-path "$scratch" || exit 1
bin="$scratch/debug/SocketsHummingbird"
report=$(python3 "$root/Tests/Interop/newcomer.py" example "$bin") || exit 1
echo "$report"
REPORT="$report" python3 - <<'PY'
import json, os
r = json.loads(os.environ["REPORT"])
checks = [
    ("no exception", "exception" not in r),
    ("chat reply", [json.loads(m) for m in r.get("chat", {}).get("received", [])] == [{"user": "ann", "text": "HELLO"}]),
    ("refused origin 403", r.get("refused", {}).get("status") == 403),
    ("refusal reason", r.get("refused", {}).get("body") == "origin not allowed\n"),
    ("router 200", r.get("root", {}).get("status") == 200 and r["root"].get("body") == "hello from Hummingbird\n"),
    ("router 404", r.get("missing", {}).get("status") == 404),
    ("upgrade without a route: router 404", r.get("upgrade_missing", {}).get("status") == 404),
    ("second connection", len(r.get("chat_again", {}).get("received", [])) == 1),
]
failed = [name for name, ok in checks if not ok]
for name in failed:
    print("FAILED:", name)
print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
raise SystemExit(1 if failed else 0)
PY
