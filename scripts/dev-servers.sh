#!/usr/bin/env bash
# Throwaway servers for development: the same PostgreSQL 15 (TLS on), MariaDB and
# SecantusDB that scripts/test.sh starts, left running so single tests can be run by hand.
#
#   scripts/dev-servers.sh start DIR   # starts them under DIR, writes DIR/env.sh
#   source DIR/env.sh                  # exports MAITRED_TEST_* for cargo test / pytest
#   scripts/dev-servers.sh stop DIR    # stops them and removes DIR
#
# Several developers (or helpers) can each start their own set in their own DIR: every
# server gets a free port, so their connection caps do not interfere.
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/secantus.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/secantus.sh"
# shellcheck source=scripts/lib/mariadb.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mariadb.sh"

usage() { die "usage: $0 start|stop DIR"; }
(($# == 2)) || usage
action=$1
dir=$2

case "$action" in
start)
    [[ -e "$dir" ]] && die "$dir exists; stop it first or pick another"
    ensure_deps client pg python mariadb || die "ensure_deps failed"
    mkdir -p "$dir/pids" "$dir/tmp"
    dir="$(cd "$dir" && pwd)"
    chmod 755 "$dir"
    pg_port="$(free_port)"
    start_pg "$dir/pg" "$pg_port" 20 || die "PostgreSQL did not start"
    mongo_port="$(free_port)"
    start_secantus "$dir/mongo" "$mongo_port" 20 || die "SecantusDB did not start"
    my_port="$(free_port)"
    start_mariadb "$dir/mariadb" "$my_port" 20 "$dir/pg/tls" || die "MariaDB did not start"
    cat >"$dir/env.sh" <<ENV
export MAITRED_TEST_PG_URL='$(pg_app_url "$pg_port")'
export MAITRED_TEST_PG_SUPERUSER_URL='$(pg_super_url "$pg_port")'
export MAITRED_TEST_PG_TLS_DIR='$dir/pg/tls'
export MAITRED_TEST_PG_DATADIR='$dir/pg/data'
export MAITRED_TEST_PG_CTL='$PG_BIN/pg_ctl'
export MAITRED_TEST_MONGO_URL='$(mongo_app_url "$mongo_port")'
export MAITRED_TEST_MYSQL_URL='$(mariadb_app_url "$my_port")'
export MAITRED_TEST_MYSQL_SOCKET='$dir/mariadb/mysql.sock'
export MAITRED_TEST_PIDDIR='$dir/pids'
export MAITRED_BIN='${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/maitred'
export TMPDIR='$dir/tmp'
export PATH='$VENV_DIR/bin':"\$PATH"
ENV
    log "servers up; run: source $dir/env.sh"
    cat "$dir/env.sh"
    ;;
stop)
    [[ -d "$dir" ]] || die "$dir does not exist"
    [[ -d "$dir/pg" ]] && stop_pg "$dir/pg"
    [[ -d "$dir/mongo" ]] && stop_secantus "$dir/mongo"
    [[ -d "$dir/mariadb" ]] && stop_mariadb "$dir/mariadb"
    rm -rf "$dir"
    ;;
*) usage ;;
esac
