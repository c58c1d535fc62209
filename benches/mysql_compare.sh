#!/usr/bin/env bash
# Side-by-side MySQL benchmark with sysbench oltp_point_select: 10 threads straight to
# MariaDB against 200 threads through maitred (pool 10), interleaved A B A B so drift on a
# shared machine cancels out. Prints one line per run and the medians (issue 4's target:
# 200 through maitred >= 0.8 of 10 straight).
#
# Each round also runs the 200 threads straight to MariaDB, with max_connections raised
# for that run only: what the server and the client cost at 200 threads with no proxy in
# between, the ceiling for any proxy on the same cores (STRAIGHT_MANY=0 skips it).
#
#   benches/mysql_compare.sh
#
# Environment: ROUNDS=3, SECONDS_PER_RUN=10, CLIENTS=200, STRAIGHT_CLIENTS=10, POOL_SIZE=10,
#              PS_MODE=auto|disable (sysbench --db-ps-mode), MAITRED_BIN=target/release/maitred,
#              MAITRED_ARGS (extra maitred flags, e.g. "--send-ahead false"),
#              UPSTREAM_SOCKET=1 (maitred reaches MariaDB over its Unix socket, as a sidecar on
#              the database host would; the clients stay on TCP)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=scripts/lib/mariadb.sh
source "$REPO_ROOT/scripts/lib/mariadb.sh"
cd "$REPO_ROOT" || exit 1

ROUNDS="${ROUNDS:-3}"
SECS="${SECONDS_PER_RUN:-10}"
CLIENTS="${CLIENTS:-200}"
STRAIGHT="${STRAIGHT_CLIENTS:-10}"
POOL="${POOL_SIZE:-10}"
PS_MODE="${PS_MODE:-auto}"
STRAIGHT_MANY="${STRAIGHT_MANY:-1}"
UPSTREAM_SOCKET="${UPSTREAM_SOCKET:-0}"

ensure_deps
BIN="$(maitred_release_bin)" || exit 1

WORK="$(mktemp -d /tmp/maitred-mybench.XXXXXX)"
chmod 755 "$WORK"
MPID=""
cleanup() {
    kill_pid "$MPID" 5
    stop_mariadb "$WORK/my" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

MY_PORT="$(free_port)"
MAX_CONN=40
start_mariadb "$WORK/my" "$MY_PORT" "$MAX_CONN"

# sb <port> <threads> <command> -> "qps errors" (for run)
sb() {
    sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$1" --mysql-user="$MY_APP_USER" \
        --mysql-password="$MY_APP_PASSWORD" --mysql-db=sbtest --tables=1 --table-size=10000 \
        --db-ps-mode="$PS_MODE" --threads="$2" --time="$SECS" oltp_point_select "$3" 2>&1
}
UPSTREAM="$(mariadb_app_url "$MY_PORT" | sed 's#/app$#/sbtest#')"
[[ "$UPSTREAM_SOCKET" == 1 ]] && UPSTREAM="$UPSTREAM?socket=$WORK/my/mysql.sock"
sb "$MY_PORT" 1 prepare >"$WORK/prepare.log" || { cat "$WORK/prepare.log"; die "sysbench prepare failed"; }
run() {
    # sysbench stops at the first error unless told to ignore it: count those (FATAL lines)
    # with the ignored ones it reports.
    sb "$1" "$2" run | awk '/queries:/{gsub(/[(]/,"",$3); q=$3} /ignored errors:/{e+=$3} /FATAL/{e++} END{printf "%.0f %d\n", q, e}'
}

declare -a M_QPS S_QPS MANY_QPS
for ((r = 1; r <= ROUNDS; r++)); do
    read -r qps errors <<<"$(run "$MY_PORT" "$STRAIGHT")"
    echo "round $r straight: $STRAIGHT threads qps=$qps errors=$errors"
    S_QPS+=("$qps")

    port="$(free_port)"
    admin="$(free_port)"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    setsid "$BIN" --listen "127.0.0.1:$port" --upstream "$UPSTREAM" \
        --pool-size "$POOL" --queue-timeout 30s --admin "127.0.0.1:$admin" ${MAITRED_ARGS:-} </dev/null >"$WORK/maitred.log" 2>&1 &
    MPID=$!
    wait_for_port "$port" 10 127.0.0.1 "$MPID" || die "maitred did not start"
    read -r qps errors <<<"$(run "$port" "$CLIENTS")"
    # How many of those commands were written ahead by the previous holder (send_ahead).
    ahead="$(curl -sf "http://127.0.0.1:$admin/metrics" | awk '/^maitred_sent_ahead_total/{s+=$2} END{printf "%.0f", s}')"
    echo "round $r maitred : $CLIENTS threads qps=$qps errors=$errors sent_ahead=${ahead:--}"
    M_QPS+=("$qps")
    kill_pid "$MPID" 5
    MPID=""

    if [[ "$STRAIGHT_MANY" == 1 ]]; then
        mariadb_root "$WORK/my" -e "SET GLOBAL max_connections = $((CLIENTS + 20))"
        read -r qps errors <<<"$(run "$MY_PORT" "$CLIENTS")"
        mariadb_root "$WORK/my" -e "SET GLOBAL max_connections = $MAX_CONN"
        echo "round $r straight: $CLIENTS threads qps=$qps errors=$errors (max_connections raised for this run)"
        MANY_QPS+=("$qps")
    fi
done

mq="$(median "${M_QPS[@]}")"
sq="$(median "${S_QPS[@]}")"
echo
echo "medians over $ROUNDS rounds (sysbench oltp_point_select, ps-mode $PS_MODE, pool $POOL, ${SECS}s runs, upstream $([[ "$UPSTREAM_SOCKET" == 1 ]] && echo "Unix socket" || echo TCP))"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "  $STRAIGHT threads straight: $sq qps; $CLIENTS threads through maitred: $mq qps; ratio $(ratio "$mq" "$sq")"
if [[ "$STRAIGHT_MANY" == 1 ]]; then
    nq="$(median "${MANY_QPS[@]}")"
    echo "  $CLIENTS threads straight (no proxy, max_connections raised): $nq qps; ratio to $STRAIGHT straight $(ratio "$nq" "$sq"); maitred's share of it $(ratio "$mq" "$nq")"
fi
