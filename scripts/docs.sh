#!/usr/bin/env bash
# Generates the DocC documentation of the Sockets library (catalog: Sources/Sockets/Sockets.docc)
# offline, with the swift-docc-plugin the package depends on, into .build/docs/<Target>.doccarchive
# for SocketsCore and Sockets (open one with `xcrun docc preview` on macOS, or serve the static
# site it holds).
#
#   scripts/docs.sh             both archives; a DocC warning (a link that does not resolve, an
#                               undocumented parameter...) fails the run (--warnings-as-errors),
#                               and so does a public symbol without a doc comment
#   scripts/docs.sh --lenient   the same, but those are only printed and counted
#
# Doc comments in Sockets cannot link to SocketsCore symbols with ``Name`` (DocC does not resolve
# links across modules, even through Sockets' @_exported import): they name them in plain `code`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/docs
mkdir -p "$out"
strict=(--warnings-as-errors)
case "${1:-}" in
    "") ;;
    --lenient) strict=() ;;
    *) echo "usage: scripts/docs.sh [--lenient]" >&2; exit 2 ;;
esac
for target in SocketsCore Sockets; do
    rm -rf "$out/$target.doccarchive"
    status=0
    swift package --allow-writing-to-directory "$out" generate-documentation --target "$target" \
        ${strict[@]+"${strict[@]}"} --output-path "$out/$target.doccarchive" >"$out/$target.log" 2>&1 || status=$?
    warnings=$(grep -c '^warning' "$out/$target.log" || true)
    errors=$(grep -c '^error' "$out/$target.log" || true)
    # Each problem with the source line it points at (the log has the full context).
    grep -E -A1 '^(warning|error)' "$out/$target.log" | grep -v '^--$' | head -40 || true
    if [ "$status" -ne 0 ] || [ ! -d "$out/$target.doccarchive" ]; then
        echo "docs: $target failed ($warnings warnings, $errors errors; see $out/$target.log)" >&2
        exit 1
    fi
    # DocC does not warn about a public symbol without a doc comment: the symbol graphs it read
    # (the plugin's, in .build/<triple>/extracted-symbols/<package>/<target>/) say which have none.
    graph_dir=$(ls -td .build/*/extracted-symbols/*/"$target" 2>/dev/null | head -1)
    [ -n "$graph_dir" ] || { echo "docs: no symbol graph of $target found under .build" >&2; exit 1; }
    undocumented=$(python3 - "$graph_dir"/*.symbols.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    for s in json.load(open(path))["symbols"]:
        if s.get("accessLevel") not in ("public", "open") or "docComment" in s:
            continue
        if s["kind"]["identifier"] == "swift.extension" or "::SYNTHESIZED::" in s["identifier"]["precise"]:
            continue
        where = s.get("location", {})
        print(f'Sources/{where.get("uri", "?").split("/Sources/", 1)[-1]}:{where.get("position", {}).get("line", 0) + 1}: '
              f'{".".join(s["pathComponents"])} has no doc comment')
PY
)
    if [ -n "$undocumented" ]; then
        echo "$undocumented"
        if ((${#strict[@]})); then
            echo "docs: $target has public symbols without a doc comment" >&2
            exit 1
        fi
    fi
    echo "docs: $out/$target.doccarchive ($warnings warnings)"
done
