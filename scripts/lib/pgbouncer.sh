# shellcheck shell=bash
# PgBouncer (Debian's package) as a comparison point in the demo.
#
#   start_pgbouncer <dir> <listen_port> <pg_dir> <pg_port> [pool_size=10] [pool_mode=transaction]
#   stop_pgbouncer <dir>
#
# PGBOUNCER_MAX_CLIENT_CONN (default 1000) sets max_client_conn (benches/compare.sh raises
# it for its idle-clients run). PGBOUNCER_UPSTREAM_HOST (default 127.0.0.1) is the server's
# host, or the directory of its Unix socket (benches/pg_compare.sh UPSTREAM_SOCKET=1).
#
# Auth: clients use SCRAM-SHA-256 as `app`; the userlist holds app's SCRAM
# secret copied from pg_authid, which lets PgBouncer both verify clients and
# log in to PostgreSQL with the client's SCRAM keys (no plain password stored).

PGBOUNCER_BIN="${PGBOUNCER_BIN:-$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)}"

start_pgbouncer() {
    local dir=$1 port=$2 pg_dir=$3 pg_port=$4 pool_size=${5:-10} mode=${6:-transaction}
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    own_dir "$dir"
    local secret
    secret="$(pg_psql "$pg_dir" "$pg_port" -d postgres -At \
        -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$PG_APP_USER'")" ||
        die "could not read the SCRAM secret of $PG_APP_USER"
    [[ "$secret" == SCRAM-SHA-256* ]] || die "unexpected secret format for $PG_APP_USER"
    printf '"%s" "%s"\n' "$PG_APP_USER" "$secret" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
$PG_APP_DB = host=${PGBOUNCER_UPSTREAM_HOST:-127.0.0.1} port=$pg_port dbname=$PG_APP_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $mode
default_pool_size = $pool_size
max_db_connections = $pool_size
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-1000}
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    own_dir "$dir/userlist.txt"
    own_dir "$dir/pgbouncer.ini"
    # One descriptor per client and per server connection: raise the soft limit (the
    # default 1024 would cap PgBouncer near 1000 clients and stall larger idle runs).
    local fds=$((${PGBOUNCER_MAX_CLIENT_CONN:-1000} + pool_size + 100))
    if ! as_service_user bash -c 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$2" -d -q "$3"' \
        _ "$fds" "$PGBOUNCER_BIN" "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1; then
        cat "$dir/start.log" "$dir/pgbouncer.log" >&2 2>/dev/null
        die "pgbouncer did not start"
    fi
    wait_for_port "$port" 10 || {
        cat "$dir/pgbouncer.log" >&2 2>/dev/null
        die "pgbouncer is not listening on 127.0.0.1:$port"
    }
}

stop_pgbouncer() {
    local dir=$1 pid
    [[ -n "$dir" && -f "$dir/pgbouncer.pid" ]] || return 0
    pid="$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill_pid "$pid" 5
    return 0
}
