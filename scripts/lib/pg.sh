# shellcheck shell=bash
# Throwaway PostgreSQL clusters for tests and demos.
#
#   start_pg <dir> <port> [max_connections=20]
#   stop_pg <dir>
#   pg_psql <dir> <port> [psql args...]   # superuser over the unix socket
#
# Layout inside <dir> (created if missing; it must be reachable by the
# service user, so give a mktemp parent `chmod 755`):
#   <dir>/data          the cluster
#   <dir>/.s.PGSQL.*    unix socket (trust auth, local only)
#   <dir>/postgres.log  server log
#
# TLS: on by default, with a throwaway CA (see make_test_tls); PG_TLS=off turns it off
# (the demo and benchmarks compare plain-text paths).
#
# Roles: superuser `postgres` / postgres_secret, and `app` / app_secret (LOGIN,
# owner of database `app`). TCP on 127.0.0.1 only, SCRAM-SHA-256 for TCP.

PG_APP_USER=app
PG_APP_PASSWORD=app_secret
PG_APP_DB=app
PG_SUPER_USER=postgres
PG_SUPER_PASSWORD=postgres_secret

pg_app_url() { echo "postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$1/$PG_APP_DB"; }
pg_super_url() { echo "postgres://$PG_SUPER_USER:$PG_SUPER_PASSWORD@127.0.0.1:$1/$PG_APP_DB"; }

# The CA of the test cluster's TLS certificate (sslrootcert for verify-ca/verify-full).
pg_ca_file() { echo "$1/tls/ca.pem"; }

# make_test_tls <dir>: a throwaway CA and a server certificate for 127.0.0.1 and
# localhost, signed by it (ca.pem, server.pem, server.key; the key mode 600).
make_test_tls() {
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=maitred test CA" \
        -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/san.ext" -out "$d/server.pem" >/dev/null 2>&1 || return 1
    chmod 600 "$d/server.key" "$d/ca.key"
    chmod 644 "$d/ca.pem" "$d/server.pem"
}

pg_psql() {
    local dir=$1 port=$2
    shift 2
    psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U "$PG_SUPER_USER" "$@"
}

start_pg() {
    local dir=$1 port=$2 max_conn=${3:-20}
    [[ -n "$dir" && -n "$port" ]] || die "usage: start_pg <dir> <port> [max_connections]"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    own_dir "$dir"
    chmod 700 "$dir"
    if ! as_service_user test -w "$dir"; then
        die "start_pg: $SERVICE_USER cannot write $dir (is a parent directory mode 700? chmod 755 it)"
    fi
    local pwfile="$dir/.pwfile"
    printf '%s\n' "$PG_SUPER_PASSWORD" >"$pwfile"
    own_dir "$pwfile"
    chmod 600 "$pwfile"
    if ! as_service_user "$PG_BIN/initdb" -D "$dir/data" -U "$PG_SUPER_USER" \
        --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -f "$pwfile"
        die "initdb failed in $dir/data"
    fi
    rm -f "$pwfile"
    cat >>"$dir/data/postgresql.conf" <<CONF

# --- maitred test settings ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = $max_conn
password_encryption = 'scram-sha-256'
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_connections = off
ssl = ${PG_TLS:-on}
ssl_cert_file = '$dir/tls/server.pem'
ssl_key_file = '$dir/tls/server.key'
CONF
    make_test_tls "$dir/tls" || die "making the test CA and server certificate failed"
    own_dir "$dir/tls"
    chown -R "$SERVICE_USER" "$dir/tls" 2>/dev/null || true
    if ! as_service_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
        -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
        cat "$dir/pg_ctl.log" "$dir/postgres.log" >&2 2>/dev/null
        die "PostgreSQL did not start in $dir on port $port"
    fi
    pg_psql "$dir" "$port" -d postgres <<SQL || die "creating roles in $dir failed"
CREATE ROLE $PG_APP_USER LOGIN PASSWORD '$PG_APP_PASSWORD';
CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER;
SQL
    wait_for_port "$port" 10 || die "PostgreSQL in $dir is not listening on 127.0.0.1:$port"
}

stop_pg() {
    local dir=$1
    [[ -n "$dir" && -f "$dir/data/postmaster.pid" ]] || return 0
    if ! as_service_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 20 stop >/dev/null 2>&1; then
        # Still there: kill the postmaster we started, by the pid it recorded.
        local pid
        pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] && kill_pid "$pid" 5
    fi
}
