#!/usr/bin/env bash
# Installs what building and testing need, when it is missing (quick when it is all there):
# Debian's zlib1g-dev (permessage-deflate links zlib), pkg-config and make (the standalone C
# build and its install check), and Python's websockets (the independent client of the interop
# tests), Chromium with its driver and Python's selenium (the chat's browser test), PostgreSQL
# (the hub's backplane tests make a throwaway cluster with its initdb and pg_ctl, and use psql).
# clang with libFuzzer and the sanitizers comes with the Swift toolchain.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v make >/dev/null 2>&1 || need+=(make)
# The TLS tests make a throwaway CA and certificate with openssl at test time.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# A real browser for the chat test: Debian's Chromium and its driver (no downloads at run time).
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s chromium-driver >/dev/null 2>&1 || need+=(chromium-driver)
dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
        exit 1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Python packages go into a virtual environment in .venv (git-ignored): a stock Debian or Ubuntu
# Python refuses a bare `pip install` (externally-managed-environment). scripts/test.sh puts
# .venv/bin first on PATH, so the tests' `python3` is this one.
root=$(cd "$(dirname "$0")/.." && pwd)
if ! "$root/.venv/bin/python3" -c 'import websockets, selenium' >/dev/null 2>&1; then
    if ! python3 -m venv "$root/.venv" >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
        apt-get update -q && apt-get install -y -q --no-install-recommends python3-venv
        python3 -m venv "$root/.venv"
    fi
    "$root/.venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'websockets>=13' 'selenium>=4.10'
fi
