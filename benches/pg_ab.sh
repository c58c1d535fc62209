#!/usr/bin/env bash
# A/B of two maitred builds on PostgreSQL: is build A cheaper or dearer than build B per
# transaction? Both run against the same server in every round, their order alternating
# (A B, B A, ...) so that drift and warm-up favour neither, under two loads:
#   - pgbench -S (simple protocol, one Query per transaction),
#   - maitred-bench steady point-select (tokio-postgres, extended protocol).
# Each run reports throughput and the proxy's CPU time per transaction (from /proc: what
# the proxy itself spent, which moves far less than throughput with what else the host
# runs). The summary gives, per load, the median over rounds of the paired ratios A/B.
#
#   BIN_A=target/release/maitred BIN_B=/tmp/maitred-old benches/pg_ab.sh
#
# Environment: ROUNDS=6, SECONDS_PER_RUN=8, CLIENTS=200, POOL_SIZE=10, PG_MAX=20,
#              LOADS="pgbench tokio", MAITRED_ARGS (extra flags for both builds).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
cd "$REPO_ROOT" || exit 1

ROUNDS="${ROUNDS:-6}"
SECS="${SECONDS_PER_RUN:-8}"
CLIENTS="${CLIENTS:-200}"
POOL="${POOL_SIZE:-10}"
PG_MAX="${PG_MAX:-20}"
LOADS="${LOADS:-pgbench tokio}"
[[ -x "${BIN_A:-}" && -x "${BIN_B:-}" ]] || die "set BIN_A and BIN_B to two maitred binaries"

ensure_deps
BENCH_BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/maitred-bench}"
[[ -n "${BENCH_BIN_READY:-}" ]] || cargo build --release -q -p maitred-bench || die "cannot build maitred-bench"

WORK="$(mktemp -d /tmp/maitred-ab.XXXXXX)"
chmod 755 "$WORK"
PG_DIR="$WORK/pg"
MPID=""
cleanup() {
    kill_pid "$MPID" 5
    stop_pg "$PG_DIR" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT="$(free_port)"
PG_TLS=off start_pg "$PG_DIR" "$PG_PORT" "$PG_MAX"
DIRECT="$(pg_app_url "$PG_PORT")"
PGPASSWORD="$PG_APP_PASSWORD" pgbench -i -s 1 -q "$DIRECT" >/dev/null 2>&1 || die "pgbench -i failed"
"$BENCH_BIN" setup "$DIRECT" >/dev/null 2>&1 || die "maitred-bench setup failed"

ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ="$(getconf CLK_TCK)"

start_maitred() {
    local port
    port="$(free_port)"
    # shellcheck disable=SC2086 # MAITRED_ARGS holds several flags
    setsid "$1" --listen "127.0.0.1:$port" --upstream "$DIRECT" --pool-size "$POOL" \
        --log-level warn ${MAITRED_ARGS:-} </dev/null >>"$WORK/maitred.log" 2>&1 &
    MPID=$!
    wait_for_port "$port" 10 127.0.0.1 "$MPID" || die "maitred ($1) did not start"
    MURL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$port/$PG_APP_DB"
}

# one <load> <binary> -> "transactions_per_s proxy_us_per_transaction"
one() {
    local load=$1 p0 p1 n out
    start_maitred "$2"
    p0="$(ticks "$MPID")"
    case "$load" in
    pgbench)
        out="$(pgbench -S -M simple -c "$CLIENTS" -j 2 -T "$SECS" -n "$MURL" 2>&1)"
        n="$(awk '/actually processed/{split($6, a, "/"); print a[1]}' <<<"$out")"
        ;;
    tokio)
        out="$("$BENCH_BIN" steady "$MURL" --clients "$CLIENTS" --duration "${SECS}s" 2>/dev/null)"
        n="$(sed -nE 's/.* ([0-9]+) ops, .*/\1/p' <<<"$out")"
        ;;
    esac
    p1="$(ticks "$MPID")"
    kill_pid "$MPID" 5
    MPID=""
    awk -v n="${n:-0}" -v p=$((p1 - p0)) -v hz="$HZ" -v s="$SECS" \
        'BEGIN{ if (n > 0) printf "%.0f %.2f\n", n/s, p*1e6/hz/n; else print "0 0" }'
}

declare -A RATIO_TPS RATIO_PX ALL_A ALL_B
for ((r = 1; r <= ROUNDS; r++)); do
    for load in $LOADS; do
        if ((r % 2)); then order="A B"; else order="B A"; fi
        for side in $order; do
            bin="$BIN_A"; [[ "$side" == B ]] && bin="$BIN_B"
            read -r tps px <<<"$(one "$load" "$bin")"
            printf "round %d %-7s %s: %6s tps, proxy %6s us/txn\n" "$r" "$load" "$side" "$tps" "$px"
            if [[ "$side" == A ]]; then A_tps=$tps A_px=$px; else B_tps=$tps B_px=$px; fi
        done
        RATIO_TPS[$load]+="$(awk -v a="$A_tps" -v b="$B_tps" 'BEGIN{printf "%.3f ", (b > 0 ? a/b : 0)}')"
        RATIO_PX[$load]+="$(awk -v a="$A_px" -v b="$B_px" 'BEGIN{printf "%.3f ", (b > 0 ? a/b : 0)}')"
        ALL_A[$load]+="$A_px "
        ALL_B[$load]+="$B_px "
    done
done

echo
echo "A = $BIN_A, B = $BIN_B; $ROUNDS rounds, $CLIENTS clients, pool $POOL, ${SECS}s runs"
for load in $LOADS; do
    # shellcheck disable=SC2086
    printf "%-7s proxy us/txn median A %s, B %s; paired A/B: proxy CPU %s (range %s-%s), throughput %s\n" "$load" \
        "$(median ${ALL_A[$load]})" "$(median ${ALL_B[$load]})" \
        "$(median ${RATIO_PX[$load]})" \
        "$(tr ' ' '\n' <<<"${RATIO_PX[$load]}" | sort -n | sed '/^$/d' | head -1)" \
        "$(tr ' ' '\n' <<<"${RATIO_PX[$load]}" | sort -n | tail -1)" \
        "$(median ${RATIO_TPS[$load]})"
done
