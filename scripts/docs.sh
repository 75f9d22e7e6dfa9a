#!/usr/bin/env bash
# Generates the DocC documentation of the Sockets library (catalog: Sources/Sockets/Sockets.docc)
# offline, with the swift-docc-plugin the package depends on, into .build/docs/Sockets.doccarchive
# (open it with `xcrun docc preview` on macOS, or serve the static site below).
#
#   scripts/docs.sh            generate the archives of SocketsCore and Sockets; DocC's warnings
#                              are printed and counted
#   scripts/docs.sh --strict   a warning fails the run (not yet: the doc comments of Sockets link
#                              to SocketsCore symbols with ``Name``, which DocC cannot resolve
#                              across modules; they need ``SocketsCore/Name`` or plain code)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/docs
mkdir -p "$out"
strict=()
[ "${1:-}" = "--strict" ] && strict=(--warnings-as-errors)
for target in SocketsCore Sockets; do
    swift package --allow-writing-to-directory "$out" generate-documentation --target "$target" \
        ${strict[@]+"${strict[@]}"} --output-path "$out/$target.doccarchive" 2>&1 | tee "$out/$target.log" | grep -v "^ *[0-9]* [|+]" | grep -E "^(warning|error)" | sort | uniq -c | sort -rn | head -5 || true
    [ -d "$out/$target.doccarchive" ] || { echo "docs: $target failed (see $out/$target.log)" >&2; exit 1; }
    echo "docs: $out/$target.doccarchive ($(grep -c '^warning' "$out/$target.log" || true) warnings)"
done
