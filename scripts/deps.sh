#!/usr/bin/env bash
# Installs what building and testing need, when it is missing (quick when it is all there):
# Debian's zlib1g-dev (permessage-deflate links zlib), pkg-config and make (the standalone C
# build and its install check), and Python's websockets (the independent client of the interop
# tests), Chromium with its driver and Python's selenium (the chat's browser test). clang with
# libFuzzer and the sanitizers comes with the Swift toolchain.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v make >/dev/null 2>&1 || need+=(make)
# A real browser for the chat test: Debian's Chromium and its driver (no downloads at run time).
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s chromium-driver >/dev/null 2>&1 || need+=(chromium-driver)
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
        exit 1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if ! python3 -c 'import websockets, selenium' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'websockets>=13' 'selenium>=4.10'
fi
