# Shared by Benchmarks/run-echo.sh and Benchmarks/alloc-check.sh (bash; sourced, not run).
# Expects $root (the repository) and $bin_dir (Benchmarks/bin) to be set.

# Echo servers under test, as "name=command" entries separated by ';'. The command gets
# "--port N" appended and must echo every text and binary message on every path, any Origin.
# SERVERS overrides the whole list, e.g. once sockets-echo has --api:
#   SERVERS="callback=$BIN --api callback;channels=$BIN --api channels;nio-echo=$NIO" run-echo.sh
# SOCKETS_ECHO_ARGS adds arguments to the default sockets-echo command only.
# Where `swift build -c release` puts them (.build/release links to the host triple's folder).
sockets_echo_bin="$root/.build/release/sockets-echo"
nio_echo_bin="$root/Benchmarks/.build/release/nio-echo"

# Parses $1 (the SERVERS syntax) into the arrays server_names and server_cmds.
parse_servers() {
    server_names=()
    server_cmds=()
    local entry
    local IFS=';'
    for entry in $1; do
        [ -n "$entry" ] || continue
        server_names+=("${entry%%=*}")
        server_cmds+=("${entry#*=}")
    done
}

# Waits until something accepts TCP connections on 127.0.0.1:$1 (at most ~30 s).
wait_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listening on port $1 after 30 s" >&2
    return 1
}

# Process ids this script started and must stop (the trap in each script calls stop_all).
started_pids=()
stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    local pid
    for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
    started_pids=()
}

# The value of key $2 in a "RESULT k=v k=v" line $1.
result_field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"; }
