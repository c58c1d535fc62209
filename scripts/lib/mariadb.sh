# shellcheck shell=bash
# Throwaway MariaDB servers for tests and demos.
#
#   start_mariadb <dir> <port> [max_connections=20] [tls_dir]
#   stop_mariadb <dir>
#   mariadb_app_url <port>          # mysql://app:app_secret@127.0.0.1:PORT/app
#   mariadb_root <dir> [args...]    # the mariadb client as root over the unix socket
#
# Layout inside <dir> (created if missing; a mktemp parent must be `chmod 755` so
# the mysql account can reach it):
#   <dir>/data          the data directory
#   <dir>/mysql.sock    unix socket (root, no password, local only)
#   <dir>/mariadb.log   server log
#   <dir>/mariadb.pid   pid file
#
# Users: `app` / app_secret (mysql_native_password, all privileges on database `app`
# and on `sbtest` for sysbench); `app_ed25519` / app_secret (MariaDB's ed25519 plugin, same
# privileges on `app`) when the plugin can be installed. TCP on 127.0.0.1 only.
# TLS: with a tls_dir holding ca.pem, server.pem and server.key (the test CA of
# make_test_tls in pg.sh), the server offers TLS with that certificate (copied to <dir>/tls).

MY_APP_USER=app
MY_APP_PASSWORD=app_secret
MY_APP_DB=app
MY_SERVICE_USER="${MY_SERVICE_USER:-mysql}"

mariadb_app_url() { echo "mysql://$MY_APP_USER:$MY_APP_PASSWORD@127.0.0.1:$1/$MY_APP_DB"; }

mariadb_root() {
    local dir=$1
    shift
    mariadb --no-defaults -uroot --socket="$dir/mysql.sock" "$@"
}

_mariadb_bin() {
    local b
    for b in mariadbd /usr/sbin/mariadbd mysqld /usr/sbin/mysqld; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        fi
    done
    return 1
}

start_mariadb() {
    local dir=$1 port=$2 max_conn=${3:-20} tls_dir=${4:-}
    [[ -n "$dir" && -n "$port" ]] || die "usage: start_mariadb <dir> <port> [max_connections] [tls_dir]"
    mkdir -p "$dir/data" "$dir/tmp"
    dir="$(cd "$dir" && pwd)"
    local tls_opt=()
    if [[ -n "$tls_dir" && -f "$tls_dir/server.pem" ]]; then
        mkdir -p "$dir/tls"
        cp "$tls_dir/ca.pem" "$tls_dir/server.pem" "$tls_dir/server.key" "$dir/tls/" ||
            die "start_mariadb: cannot copy the TLS files of $tls_dir"
        chmod 600 "$dir/tls/server.key"
        tls_opt=(--ssl-ca="$dir/tls/ca.pem" --ssl-cert="$dir/tls/server.pem" --ssl-key="$dir/tls/server.key")
    fi
    local user_opt=()
    if [[ $EUID -eq 0 ]]; then
        id "$MY_SERVICE_USER" >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin "$MY_SERVICE_USER"
        chown -R "$MY_SERVICE_USER" "$dir"
        user_opt=(--user="$MY_SERVICE_USER")
    fi
    local bin
    bin="$(_mariadb_bin)" || die "start_mariadb: mariadbd not found (apt-get install mariadb-server)"
    if ! mariadb-install-db --no-defaults "${user_opt[@]}" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1; then
        cat "$dir/install.log" >&2
        die "mariadb-install-db failed in $dir/data"
    fi
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    setsid "$bin" --no-defaults "${user_opt[@]}" --datadir="$dir/data" --socket="$dir/mysql.sock" \
        --pid-file="$dir/mariadb.pid" --tmpdir="$dir/tmp" --log-error="$dir/mariadb.log" \
        --bind-address=127.0.0.1 --port="$port" --max-connections="$max_conn" \
        --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
        --innodb-flush-log-at-trx-commit=0 --sync-binlog=0 --skip-log-bin \
        --max-prepared-stmt-count=100000 "${tls_opt[@]}" >/dev/null 2>&1 &
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S "$dir/mysql.sock" ]] && mariadb_root "$dir" -e 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! mariadb_root "$dir" -e 'SELECT 1' >/dev/null 2>&1; then
        cat "$dir/mariadb.log" >&2 2>/dev/null
        die "MariaDB did not start in $dir on port $port"
    fi
    mariadb_root "$dir" <<SQL || die "creating users in $dir failed"
CREATE DATABASE IF NOT EXISTS $MY_APP_DB;
CREATE DATABASE IF NOT EXISTS sbtest;
CREATE USER '$MY_APP_USER'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('$MY_APP_PASSWORD');
CREATE USER '$MY_APP_USER'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$MY_APP_PASSWORD');
GRANT ALL PRIVILEGES ON $MY_APP_DB.* TO '$MY_APP_USER'@'%';
GRANT ALL PRIVILEGES ON sbtest.* TO '$MY_APP_USER'@'%';
GRANT ALL PRIVILEGES ON $MY_APP_DB.* TO '$MY_APP_USER'@'localhost';
GRANT ALL PRIVILEGES ON sbtest.* TO '$MY_APP_USER'@'localhost';
GRANT PROCESS, CONNECTION ADMIN ON *.* TO '$MY_APP_USER'@'%';
GRANT PROCESS, CONNECTION ADMIN ON *.* TO '$MY_APP_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
    # A user of MariaDB's client_ed25519 plugin, for maitred's server-side login with it.
    mariadb_root "$dir" >/dev/null 2>&1 <<SQL || log "MariaDB in $dir: no ed25519 plugin; user app_ed25519 not created"
INSTALL SONAME 'auth_ed25519';
CREATE USER 'app_ed25519'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('$MY_APP_PASSWORD');
GRANT ALL PRIVILEGES ON $MY_APP_DB.* TO 'app_ed25519'@'%';
SQL
    wait_for_port "$port" 10 || die "MariaDB in $dir is not listening on 127.0.0.1:$port"
}

stop_mariadb() {
    local dir=$1
    [[ -n "$dir" && -f "$dir/mariadb.pid" ]] || return 0
    local pid
    pid="$(head -n1 "$dir/mariadb.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill_pid "$pid" 20
}
