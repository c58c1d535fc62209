#!/usr/bin/env bash
# Side-by-side PostgreSQL benchmark: maitred vs PgBouncer (and direct), interleaved
# A B A B so that drift on a shared machine cancels out. Prints one line per run and the
# medians.
#
#   benches/pg_compare.sh
#
# Environment: ROUNDS=3, SECONDS_PER_RUN=10, CLIENTS=200, POOL_SIZE=10, PG_MAX=20,
#              MODE=simple (pgbench -M), SCRIPT=select|tpcb, MAITRED_BIN=target/release/maitred
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
cd "$REPO_ROOT" || exit 1

ROUNDS="${ROUNDS:-3}"
SECS="${SECONDS_PER_RUN:-10}"
CLIENTS="${CLIENTS:-200}"
POOL="${POOL_SIZE:-10}"
PG_MAX="${PG_MAX:-20}"
MODE="${MODE:-simple}"
case "${SCRIPT:-select}" in select) SARGS=(-S) ;; tpcb) SARGS=() ;; *) die "SCRIPT: select|tpcb" ;; esac

ensure_deps
BIN="$(maitred_release_bin)" || exit 1

WORK="$(mktemp -d /tmp/maitred-bench.XXXXXX)"
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
PG_TLS=off start_pg "$PG_DIR" "$PG_PORT" "$PG_MAX"
DIRECT="$(pg_app_url "$PG_PORT")"
PGPASSWORD="$PG_APP_PASSWORD" pgbench -i -s 1 -q "$DIRECT" >/dev/null 2>&1 || die "pgbench -i failed"

# run <clients> <url> -> "tps latency_ms failed"
run() {
    pgbench "${SARGS[@]}" -M "$MODE" -c "$1" -j 2 -T "$SECS" -n "$2" 2>&1 |
        awk '/^tps/{t=$3} /latency average/{l=$4} /failed transactions/{f=$5} END{printf "%.0f %.3f %s\n", t, l, (f==""?"-":f)}'
}

# Starts maitred in this shell (so MPID is known to the caller); sets MURL.
start_maitred() {
    local port
    port="$(free_port)"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    setsid "$BIN" --listen "127.0.0.1:$port" --upstream "$DIRECT" --pool-size "$POOL" </dev/null >"$WORK/maitred.log" 2>&1 &
    MPID=$!
    wait_for_port "$port" 10 127.0.0.1 "$MPID" || die "maitred did not start"
    MURL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$port/$PG_APP_DB"
}

declare -a M_TPS B_TPS M_LAT1 B_LAT1 D_LAT1
for ((r = 1; r <= ROUNDS; r++)); do
    start_maitred
    url="$MURL"
    read -r tps lat failed <<<"$(run "$CLIENTS" "$url")"
    read -r _ lat1 _ <<<"$(run 1 "$url")"
    echo "round $r maitred   : ${CLIENTS} clients tps=$tps lat=${lat}ms failed=$failed | 1 client lat=${lat1}ms"
    M_TPS+=("$tps"); M_LAT1+=("$lat1")
    kill_pid "$MPID" 5; MPID=""

    bport="$(free_port)"
    start_pgbouncer "$WORK/pgb" "$bport" "$PG_DIR" "$PG_PORT" "$POOL" transaction >/dev/null 2>&1
    burl="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$bport/$PG_APP_DB"
    read -r tps lat failed <<<"$(run "$CLIENTS" "$burl")"
    [[ "$tps" == 0 ]] && { echo "pgbouncer run failed:"; tail -3 "$WORK/pgb/pgbouncer.log"; }
    read -r _ lat1 _ <<<"$(run 1 "$burl")"
    echo "round $r pgbouncer : ${CLIENTS} clients tps=$tps lat=${lat}ms failed=$failed | 1 client lat=${lat1}ms"
    B_TPS+=("$tps"); B_LAT1+=("$lat1")
    stop_pgbouncer "$WORK/pgb" >/dev/null 2>&1

    read -r _ lat1 _ <<<"$(run 1 "$DIRECT")"
    echo "round $r direct    : 1 client lat=${lat1}ms"
    D_LAT1+=("$lat1")
done

mt="$(median "${M_TPS[@]}")"; bt="$(median "${B_TPS[@]}")"
ml="$(median "${M_LAT1[@]}")"; bl="$(median "${B_LAT1[@]}")"; dl="$(median "${D_LAT1[@]}")"
echo
echo "medians over $ROUNDS rounds (pgbench ${SARGS[*]:-tpcb} -M $MODE, $CLIENTS clients, pool $POOL, max_connections $PG_MAX, ${SECS}s runs)"
echo "  throughput: maitred $mt tps, PgBouncer $bt tps, ratio $(awk -v a="$mt" -v b="$bt" 'BEGIN{printf "%.2f", a/b}')"
echo "  1-client latency: direct ${dl}ms, maitred ${ml}ms (+$(awk -v a="$ml" -v d="$dl" 'BEGIN{printf "%.3f", a-d}')), PgBouncer ${bl}ms (+$(awk -v a="$bl" -v d="$dl" 'BEGIN{printf "%.3f", a-d}'))"
