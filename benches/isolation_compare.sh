#!/usr/bin/env bash
# The PostgreSQL isolation suite (tests/pg_isolation_e2e.rs) against maitred and PgBouncer
# in transaction mode, same run, one server connection behind each: for every case, what
# the next client saw. Prints the markdown table of docs/postgres.md.
#
#   benches/isolation_compare.sh
#
# Environment: MAITRED_BIN (default: the debug build, built if missing).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
cd "$REPO_ROOT" || exit 1

ensure_deps
cargo build -q -p maitred -p maitred-e2e --tests >/dev/null || die "build failed"
BIN="${MAITRED_BIN:-$REPO_ROOT/target/debug/maitred}"

WORK="$(mktemp -d /tmp/maitred-isolation.XXXXXX)"
chmod 755 "$WORK"
PG_DIR="$WORK/pg"
MPID=""
cleanup() {
    kill_pid "$MPID" 5
    stop_pgbouncer "$WORK/pgb" 2>/dev/null
    stop_pg "$PG_DIR" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT="$(free_port)"
PG_TLS=off start_pg "$PG_DIR" "$PG_PORT" 20
export MAITRED_TEST_PG_URL MAITRED_TEST_PG_SUPERUSER_URL
MAITRED_TEST_PG_URL="$(pg_app_url "$PG_PORT")"
MAITRED_TEST_PG_SUPERUSER_URL="$(pg_super_url "$PG_PORT")"

BPORT="$(free_port)"
start_pgbouncer "$WORK/pgb" "$BPORT" "$PG_DIR" "$PG_PORT" 1 transaction >/dev/null 2>&1 ||
    die "pgbouncer did not start"
MPORT="$(free_port)"
"$BIN" --listen "127.0.0.1:$MPORT" --upstream "$MAITRED_TEST_PG_URL" --pool-size 1 \
    --queue-timeout 1s >"$WORK/maitred.log" 2>&1 &
MPID=$!
wait_for_port "$MPORT" 10 || die "maitred did not start"

report() { # <url> -> "case<TAB>outcome" lines
    ISOLATION_URL="$1" cargo test -q --test pg_isolation_e2e report_against_a_pooler \
        -- --ignored --nocapture --test-threads 1 2>/dev/null |
        awk -F'\t' '/^ISOLATION_CASE/ {print $2 "\t" $3}'
}
report "postgres://app:$PG_APP_PASSWORD@127.0.0.1:$MPORT/app" >"$WORK/maitred.tsv"
report "postgres://app:$PG_APP_PASSWORD@127.0.0.1:$BPORT/app" >"$WORK/pgbouncer.tsv"

echo "| case (simple protocol, one server connection) | maitred | PgBouncer $("$PGBOUNCER_BIN" --version 2>/dev/null | awk '{print $2; exit}') |"
echo "| --- | --- | --- |"
join -t $'\t' <(sort "$WORK/maitred.tsv") <(sort "$WORK/pgbouncer.tsv") |
    awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " |"}'
m_leaks=$(grep -c $'\tLEAK' "$WORK/maitred.tsv")
b_leaks=$(grep -c $'\tLEAK' "$WORK/pgbouncer.tsv")
echo
echo "leaks: maitred $m_leaks of $(wc -l <"$WORK/maitred.tsv"), PgBouncer $b_leaks of $(wc -l <"$WORK/pgbouncer.tsv")"
