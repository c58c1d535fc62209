#!/usr/bin/env bash
# Side-by-side PostgreSQL benchmark: maitred vs PgBouncer (and direct), interleaved
# A B A B so that drift on a shared machine cancels out. Prints one line per run and the
# medians: throughput, CPU time per transaction (steadier than throughput on a shared
# host) and the latency one client adds.
#
#   benches/pg_compare.sh
#
# Environment: ROUNDS=3, SECONDS_PER_RUN=10, CLIENTS=200, POOL_SIZE=10, PG_MAX=20,
#              MODE=simple (pgbench -M), SCRIPT=select|tpcb, MAITRED_BIN=target/release/maitred,
#              MAITRED_ARGS (extra maitred flags, e.g. "--send-ahead false"),
#              UPSTREAM_SOCKET=1 (maitred and PgBouncer both reach PostgreSQL over its Unix
#              socket, as on the database host; pgbench stays on TCP),
#              BIN_B=path (a second maitred binary, e.g. a build of an earlier commit, run
#              in every round after the first: an A/B comparison in the same run)
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
UPSTREAM="$DIRECT"
if [[ "${UPSTREAM_SOCKET:-0}" == 1 ]]; then
    UPSTREAM="$DIRECT?host=$PG_DIR"
    export PGBOUNCER_UPSTREAM_HOST="$PG_DIR"
fi
PGPASSWORD="$PG_APP_PASSWORD" pgbench -i -s 1 -q "$DIRECT" >/dev/null 2>&1 || die "pgbench -i failed"

# CPU ticks (user + system) of one process, and of the server backends of the app user.
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
backend_ticks() {
    local t=0 p
    for p in $(pgrep -f "postgres: $PG_APP_USER $PG_APP_DB (127.0.0.1|\[local\])"); do t=$((t + $(ticks "$p"))); done
    echo "$t"
}
HZ="$(getconf CLK_TCK)"

# run <clients> <url> [proxy_pid] -> "tps latency_ms failed cpu_us proxy_us"
# cpu_us: CPU time per transaction of the proxy, the server backends and pgbench together
# (the backends of a pool stay open across the run; counted after it). On a saturated
# machine throughput is 2 cores / cpu_us, but cpu_us does not move with what else the host
# runs, so it tells the proxies apart in fewer rounds ("-" without a proxy pid).
run() {
    local p0=0 out
    [[ -n "${3:-}" ]] && p0="$(ticks "$3")"
    out="$({ /usr/bin/time -f "TIME %U %S" pgbench "${SARGS[@]}" -M "$MODE" -c "$1" -j 2 -T "$SECS" -n "$2"; } 2>&1)"
    local p1=0 b1=0
    if [[ -n "${3:-}" ]]; then p1="$(ticks "$3")"; b1="$(backend_ticks)"; fi
    echo "$out" | awk -v proxy="${3:-}" -v p=$((p1 - p0)) -v b="$b1" -v hz="$HZ" -v secs="$SECS" '
        /^tps/{t=$3} /latency average/{l=$4} /failed transactions/{f=$5}
        /actually processed/{split($6, a, "/"); n=a[1]} /^TIME/{ut=$2; st=$3}
        END{
            cpu="-"; px="-"
            if (proxy != "" && n > 0) { us=1e6/hz/n; cpu=sprintf("%.1f", p*us + b*us + (ut+st)*1e6/n); px=sprintf("%.1f", p*us) }
            printf "%.0f %.3f %s %s %s\n", t, l, (f==""?"-":f), cpu, px
        }'
}

# Starts maitred (binary $1, default BIN) in this shell (so MPID is known to the caller);
# sets MURL.
start_maitred() {
    local port bin="${1:-$BIN}"
    port="$(free_port)"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    setsid "$bin" --listen "127.0.0.1:$port" --upstream "$UPSTREAM" --pool-size "$POOL" ${MAITRED_ARGS:-} </dev/null >"$WORK/maitred.log" 2>&1 &
    MPID=$!
    wait_for_port "$port" 10 127.0.0.1 "$MPID" || die "maitred did not start"
    MURL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$port/$PG_APP_DB"
}

declare -a M_TPS B_TPS M_LAT1 B_LAT1 D_LAT1 M_CPU B_CPU M_PX B_PX A_TPS A_CPU A_PX A_LAT1
for ((r = 1; r <= ROUNDS; r++)); do
    start_maitred
    url="$MURL"
    read -r tps lat failed cpu px <<<"$(run "$CLIENTS" "$url" "$MPID")"
    read -r _ lat1 _ <<<"$(run 1 "$url")"
    echo "round $r maitred   : ${CLIENTS} clients tps=$tps lat=${lat}ms failed=$failed cpu/txn=${cpu}us (proxy ${px}us) | 1 client lat=${lat1}ms"
    M_TPS+=("$tps"); M_LAT1+=("$lat1"); M_CPU+=("$cpu"); M_PX+=("$px")
    kill_pid "$MPID" 5; MPID=""

    if [[ -n "${BIN_B:-}" ]]; then
        start_maitred "$BIN_B"
        read -r tps lat failed cpu px <<<"$(run "$CLIENTS" "$MURL" "$MPID")"
        read -r _ lat1 _ <<<"$(run 1 "$MURL")"
        echo "round $r maitred B : ${CLIENTS} clients tps=$tps lat=${lat}ms failed=$failed cpu/txn=${cpu}us (proxy ${px}us) | 1 client lat=${lat1}ms"
        A_TPS+=("$tps"); A_LAT1+=("$lat1"); A_CPU+=("$cpu"); A_PX+=("$px")
        kill_pid "$MPID" 5; MPID=""
    fi

    bport="$(free_port)"
    start_pgbouncer "$WORK/pgb" "$bport" "$PG_DIR" "$PG_PORT" "$POOL" transaction >/dev/null 2>&1
    burl="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$bport/$PG_APP_DB"
    bpid="$(cat "$WORK/pgb/pgbouncer.pid" 2>/dev/null || pgrep -n pgbouncer)"
    read -r tps lat failed cpu px <<<"$(run "$CLIENTS" "$burl" "$bpid")"
    [[ "$tps" == 0 ]] && { echo "pgbouncer run failed:"; tail -3 "$WORK/pgb/pgbouncer.log"; }
    read -r _ lat1 _ <<<"$(run 1 "$burl")"
    echo "round $r pgbouncer : ${CLIENTS} clients tps=$tps lat=${lat}ms failed=$failed cpu/txn=${cpu}us (proxy ${px}us) | 1 client lat=${lat1}ms"
    B_TPS+=("$tps"); B_LAT1+=("$lat1"); B_CPU+=("$cpu"); B_PX+=("$px")
    stop_pgbouncer "$WORK/pgb" >/dev/null 2>&1

    read -r _ lat1 _ <<<"$(run 1 "$DIRECT")"
    echo "round $r direct    : 1 client lat=${lat1}ms"
    D_LAT1+=("$lat1")
done

mt="$(median "${M_TPS[@]}")"; bt="$(median "${B_TPS[@]}")"
ml="$(median "${M_LAT1[@]}")"; bl="$(median "${B_LAT1[@]}")"; dl="$(median "${D_LAT1[@]}")"
echo
echo "medians over $ROUNDS rounds (pgbench ${SARGS[*]:-tpcb} -M $MODE, $CLIENTS clients, pool $POOL, max_connections $PG_MAX, ${SECS}s runs, upstream $([[ "$UPSTREAM" == "$DIRECT" ]] && echo TCP || echo "Unix socket"))"
echo "  throughput: maitred $mt tps, PgBouncer $bt tps, ratio $(awk -v a="$mt" -v b="$bt" 'BEGIN{printf "%.2f", a/b}')"
mc="$(median "${M_CPU[@]}")"; bc="$(median "${B_CPU[@]}")"
echo "  CPU per transaction (proxy + server + pgbench): maitred ${mc}us (proxy $(median "${M_PX[@]}")us), PgBouncer ${bc}us (proxy $(median "${B_PX[@]}")us)"
echo "  1-client latency: direct ${dl}ms, maitred ${ml}ms (+$(awk -v a="$ml" -v d="$dl" 'BEGIN{printf "%.3f", a-d}')), PgBouncer ${bl}ms (+$(awk -v a="$bl" -v d="$dl" 'BEGIN{printf "%.3f", a-d}'))"
if [[ -n "${BIN_B:-}" ]]; then
    at="$(median "${A_TPS[@]}")"
    echo "  maitred B ($BIN_B): $at tps (A/B $(awk -v a="$mt" -v b="$at" 'BEGIN{printf "%.2f", a/b}')), CPU per transaction $(median "${A_CPU[@]}")us (proxy $(median "${A_PX[@]}")us), 1-client latency $(median "${A_LAT1[@]}")ms"
fi
