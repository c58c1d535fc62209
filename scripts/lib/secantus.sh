# shellcheck shell=bash
# Throwaway SecantusDB servers (a single-node server speaking the MongoDB wire
# protocol, from PyPI) for tests and demos.
#
#   start_secantus <dir> <port> [max_connections=20] [auth=1]
#   stop_secantus <dir>
#
# Needs the repo's .venv with SecantusDB and pymongo (ensure_deps python).
# Layout inside <dir>: data/ (storage), secantus.log, secantus.pid.
# With auth on (the default) clients log in as app / app_secret (SCRAM-SHA-256,
# authSource admin, role root).

MONGO_APP_USER=app
MONGO_APP_PASSWORD=app_secret

mongo_app_url() { echo "mongodb://$MONGO_APP_USER:$MONGO_APP_PASSWORD@127.0.0.1:$1/app?authSource=admin"; }

_secantus_python() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    echo "$root/.venv/bin/python"
}

start_secantus() {
    local dir=$1 port=$2 max_conn=${3:-20} auth=${4:-1}
    [[ -n "$dir" && -n "$port" ]] || die "usage: start_secantus <dir> <port> [max_connections] [auth]"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local py launcher
    py="$(_secantus_python)"
    launcher="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secantus_launch.py"
    [[ -x "$py" ]] || die "start_secantus: $py missing (run ensure_deps python)"
    rm -f "$dir/ready"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    setsid "$py" "$launcher" "$dir" "$port" "$max_conn" "$auth" >"$dir/secantus.log" 2>&1 &
    echo $! >"$dir/secantus.pid"
    local i
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$(cat "$dir/secantus.pid")" 2>/dev/null; then
            cat "$dir/secantus.log" >&2
            die "SecantusDB in $dir exited during startup"
        fi
        [[ -f "$dir/ready" ]] && return 0
        sleep 0.1
    done
    die "SecantusDB in $dir is not listening on 127.0.0.1:$port"
}

stop_secantus() {
    local dir=$1
    [[ -n "$dir" && -f "$dir/secantus.pid" ]] || return 0
    local pid
    pid="$(head -n1 "$dir/secantus.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill_pid "$pid" 10
    rm -f "$dir/secantus.pid" "$dir/ready"
}
