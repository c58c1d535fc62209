#!/usr/bin/env bash
# Demo: a burst of pgbench clients against a PostgreSQL that allows only 20
# connections, straight to the server, through maitred, and through PgBouncer.
#
#   scripts/demo.sh
#
# Settings (environment):
#   DEMO_SECONDS=10     duration of each pgbench run (-T)
#   DEMO_CLIENTS=200    pgbench clients (-c)
#   DEMO_THREADS=2      pgbench threads (-j)
#   DEMO_POOL_SIZE=10   server connections for maitred and PgBouncer
#   DEMO_SCRIPT=select  select (pgbench -S) or tpcb (pgbench's default read-write script)
#   MAITRED_BIN=...     use this binary instead of `cargo build --release -p maitred`
#
# Everything runs on 127.0.0.1 in a temp dir and is torn down on exit.
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT" || exit 1

DEMO_SECONDS="${DEMO_SECONDS:-10}"
DEMO_CLIENTS="${DEMO_CLIENTS:-200}"
DEMO_THREADS="${DEMO_THREADS:-2}"
DEMO_POOL_SIZE="${DEMO_POOL_SIZE:-10}"
DEMO_SCRIPT="${DEMO_SCRIPT:-select}"
PG_MAX_CONNECTIONS=20
case "$DEMO_SCRIPT" in
select) SCRIPT_ARGS=(-S) ;;
tpcb) SCRIPT_ARGS=() ;;
*) die "DEMO_SCRIPT must be select or tpcb, not '$DEMO_SCRIPT'" ;;
esac
for v in DEMO_SECONDS DEMO_CLIENTS DEMO_THREADS DEMO_POOL_SIZE; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done

WORK=""
PG_DIR=""
MAITRED_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$MAITRED_PID" ]]; then
        kill_pid "$MAITRED_PID" 5
        wait "$MAITRED_PID" 2>/dev/null
    fi
    if [[ -n "$WORK" ]]; then
        stop_pgbouncer "$WORK/pgbouncer"
    fi
    if [[ -n "$PG_DIR" ]]; then
        stop_pg "$PG_DIR"
    fi
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

ensure_deps pg client pgbouncer || die "ensure_deps failed"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/maitred-demo.XXXXXX")"
chmod 755 "$WORK"
PG_DIR="$WORK/pg"
PG_PORT="$(free_port)"
log "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT with max_connections=$PG_MAX_CONNECTIONS"
PG_TLS=off start_pg "$PG_DIR" "$PG_PORT" "$PG_MAX_CONNECTIONS"
DIRECT_URL="$(pg_app_url "$PG_PORT")"

log "pgbench -i -s 1 (directly)"
pgbench -i -s 1 -q "$DIRECT_URL" >"$WORK/pgbench-init.log" 2>&1 || {
    cat "$WORK/pgbench-init.log" >&2
    die "pgbench -i failed"
}

# --- maitred -----------------------------------------------------------------
MAITRED_URL=""
MAITRED_NOTE=""
if [[ -n "${MAITRED_BIN:-}" ]]; then
    BIN="$MAITRED_BIN"
else
    log "cargo build --release -p maitred"
    BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/maitred"
    if ! cargo build --release -p maitred; then
        MAITRED_NOTE="cargo build --release -p maitred failed"
        BIN=""
    fi
fi
if [[ -n "$BIN" && ! -x "$BIN" ]]; then
    MAITRED_NOTE="no maitred binary at $BIN"
    BIN=""
fi
if [[ -n "$BIN" ]]; then
    M_PORT="$(free_port)"
    log "starting maitred on 127.0.0.1:$M_PORT (pool size $DEMO_POOL_SIZE, transaction mode)"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    RUST_LOG="${RUST_LOG:-info}" setsid "$BIN" --listen "127.0.0.1:$M_PORT" --upstream "$DIRECT_URL" \
        --pool-size "$DEMO_POOL_SIZE" --pool-mode transaction \
        </dev/null >"$WORK/maitred.log" 2>&1 &
    MAITRED_PID=$!
    if wait_for_port "$M_PORT" 10 127.0.0.1 "$MAITRED_PID"; then
        MAITRED_URL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$M_PORT/$PG_APP_DB"
    else
        MAITRED_NOTE="maitred did not start (log below)"
        tail -n 20 "$WORK/maitred.log" >&2
    fi
fi

# --- runs ----------------------------------------------------------------------
ROWS=()

# bench <label> <url>: one pgbench run; its failure is a result, not an error.
bench() {
    local label=$1 url=$2 out="$WORK/pgbench-$1.out" rc=0
    log "pgbench ${SCRIPT_ARGS[*]} -c $DEMO_CLIENTS -j $DEMO_THREADS -T $DEMO_SECONDS -n -> $label"
    PGCONNECT_TIMEOUT=30 timeout --kill-after=10 $((DEMO_SECONDS + 120)) \
        pgbench "${SCRIPT_ARGS[@]}" -c "$DEMO_CLIENTS" -j "$DEMO_THREADS" -T "$DEMO_SECONDS" -n \
        "$url" >"$out" 2>&1 || rc=$?
    local conn_err failed aborted tps lat processed
    conn_err="$(grep -c 'could not create connection' "$out")"
    if ((conn_err == 0)); then
        conn_err="$(grep -cE 'connection to server .* failed|too many clients|remaining connection slots' "$out")"
    fi
    aborted="$(grep -cE 'client [0-9]+ aborted|aborted in command' "$out")"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)"
    processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n1)"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n1)"
    [[ -n "$tps" ]] && tps="$(printf '%.0f' "$tps")"
    [[ -n "$lat" ]] && lat="$(printf '%.2f' "$lat")"
    ROWS+=("$label|$DEMO_CLIENTS|$rc|$conn_err|${failed:--}|$aborted|${processed:--}|${tps:--}|${lat:--}")
    if ((rc != 0)); then
        log "pgbench -> $label exited $rc; first error lines:"
        grep -m 3 -iE 'error|fatal|abort' "$out" | cut -c1-200 >&2
    fi
}

bench "postgres-direct" "$DIRECT_URL"
if [[ -n "$MAITRED_URL" ]]; then
    bench "maitred" "$MAITRED_URL"
    if ! kill -0 "$MAITRED_PID" 2>/dev/null; then
        warn "maitred exited during the run; last log lines:"
        tail -n 20 "$WORK/maitred.log" >&2
    fi
else
    ROWS+=("maitred|$DEMO_CLIENTS|-|-|-|-|-|-|-")
fi
# Each pooler keeps its server connections open when idle, and the server allows only
# PG_MAX_CONNECTIONS: stop maitred before PgBouncer runs, so each gets its full pool.
if [[ -n "$MAITRED_PID" ]]; then
    kill_pid "$MAITRED_PID" 5
    MAITRED_PID=""
fi

# --- PgBouncer -----------------------------------------------------------------
B_PORT="$(free_port)"
log "starting PgBouncer on 127.0.0.1:$B_PORT (pool size $DEMO_POOL_SIZE, transaction mode)"
start_pgbouncer "$WORK/pgbouncer" "$B_PORT" "$PG_DIR" "$PG_PORT" "$DEMO_POOL_SIZE" transaction
BOUNCER_URL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$B_PORT/$PG_APP_DB"
bench "pgbouncer" "$BOUNCER_URL"

# --- table ---------------------------------------------------------------------
echo
echo "pgbench ${SCRIPT_ARGS[*]:-(tpcb-like)} -c $DEMO_CLIENTS -j $DEMO_THREADS -T $DEMO_SECONDS -n;" \
    "PostgreSQL max_connections=$PG_MAX_CONNECTIONS; poolers: $DEMO_POOL_SIZE server connections, transaction mode"
printf '%-16s %7s %5s %11s %9s %8s %10s %10s %12s\n' \
    target clients exit conn_errors failed_tx aborted processed tps avg_lat_ms
printf '%-16s %7s %5s %11s %9s %8s %10s %10s %12s\n' \
    ---------------- ------- ----- ----------- --------- -------- ---------- ---------- ------------
for row in "${ROWS[@]}"; do
    IFS='|' read -r t c e ce f a p tps lat <<<"$row"
    printf '%-16s %7s %5s %11s %9s %8s %10s %10s %12s\n' "$t" "$c" "$e" "$ce" "$f" "$a" "$p" "$tps" "$lat"
done
[[ -n "$MAITRED_NOTE" ]] && echo "maitred: $MAITRED_NOTE"
echo "(exit: pgbench's exit code; conn_errors: connection failures it reported before aborting;"
echo " failed_tx: 'number of failed transactions'; a '-' means pgbench never got to run;"
echo " an exit code above 128 means pgbench itself died from a signal while aborting)"
exit 0
