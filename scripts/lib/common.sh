# shellcheck shell=bash
# Sourced helpers shared by scripts/test.sh and scripts/demo.sh.
#
#   source "$(dirname "$0")/lib/common.sh"
#
# Pulls in the sibling helper files (deps.sh, pg.sh, pgbouncer.sh) and defines
# the small generic helpers: logging, free_port, wait_for_port.

if [[ -n "${_MAITRED_LIB_COMMON:-}" ]]; then
    return 0
fi
_MAITRED_LIB_COMMON=1

MAITRED_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$MAITRED_LIB_DIR/../.." && pwd)"
export REPO_ROOT

# Where the PostgreSQL 15 server binaries live (Debian layout).
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Python interpreter for the one-liners (not the venv: it may not exist yet).
_py() {
    if command -v python3 >/dev/null 2>&1; then
        python3 "$@"
    else
        /usr/bin/python3 "$@"
    fi
}

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    _py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# port_open <port> [host]: true when something accepts TCP there right now.
port_open() {
    local port=$1 host=${2:-127.0.0.1}
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# wait_for_port <port> [timeout_seconds=10] [host=127.0.0.1] [pid]
# Waits until the port accepts TCP. If a pid is given and that process dies
# first, gives up at once. Returns non-zero on timeout.
wait_for_port() {
    local port=$1 timeout=${2:-10} host=${3:-127.0.0.1} pid=${4:-}
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if port_open "$port" "$host"; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            warn "process $pid exited before $host:$port opened"
            return 1
        fi
        sleep 0.1
    done
    warn "timed out after ${timeout}s waiting for $host:$port"
    return 1
}

# Sessions: the scripts start maitred and the servers with `setsid`, in a session of their
# own, as a service manager or a container would (PgBouncer -d and pg_ctl do it
# themselves). With autogroup scheduling (sched_autogroup_enabled=1, the Debian default) the
# kernel shares CPU between sessions first: a daemon left in a script's session shares one
# slice with the load generator, which skews any side-by-side run (docs/benchmarks.md).
# Backgrounded, setsid execs in place, so $! is the daemon's pid. Call it directly: `f &`
# on a shell function wrapping it would leave $! as the subshell's pid.

# maitred_release_bin: prints $MAITRED_BIN if set, else builds the release binary and
# prints its path. Use as BIN="$(maitred_release_bin)" || exit 1.
maitred_release_bin() {
    if [[ -n "${MAITRED_BIN:-}" ]]; then
        echo "$MAITRED_BIN"
        return 0
    fi
    cargo build --release -q -p maitred >&2 || die "build failed"
    echo "$REPO_ROOT/target/release/maitred"
}

# median <numbers...>: the middle value (the lower middle of an even count), for the
# interleaved rounds of benches/*_compare.sh.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# kill_pid <pid> [grace_seconds=5]: SIGTERM, wait, then SIGKILL. Only for
# processes this script started itself.
kill_pid() {
    local pid=$1 grace=${2:-5} i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# The unprivileged account that runs PostgreSQL and PgBouncer when we are
# root (both refuse to run as root). When not root, we run them as ourselves.
SERVICE_USER="${SERVICE_USER:-postgres}"

# as_service_user <cmd...>: run a command as SERVICE_USER when root.
as_service_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$SERVICE_USER" -- "$@"
    else
        "$@"
    fi
}

# ensure_service_user: create SERVICE_USER if we are root and it is missing.
ensure_service_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        log "creating unprivileged user $SERVICE_USER"
        useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
}

# own_dir <dir>: make a directory usable by SERVICE_USER.
own_dir() {
    if [[ $EUID -eq 0 ]]; then
        chown "$SERVICE_USER" "$1"
    fi
}

# shellcheck source=scripts/lib/deps.sh
source "$MAITRED_LIB_DIR/deps.sh"
# shellcheck source=scripts/lib/pg.sh
source "$MAITRED_LIB_DIR/pg.sh"
# shellcheck source=scripts/lib/pgbouncer.sh
source "$MAITRED_LIB_DIR/pgbouncer.sh"
