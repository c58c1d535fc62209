#!/usr/bin/env bash
# Demo: for each protocol, a burst of clients against a server that allows only 20
# connections, straight to the server and through maitred; for PostgreSQL also through
# PgBouncer. One table at the end: throughput, clients that got errors, and the peak number
# of connections the server had (as the server itself counts them).
#
#   scripts/demo.sh
#
#   PostgreSQL 15          pgbench (-S by default), DEMO_CLIENTS clients
#   MySQL (MariaDB)        scripts/lib/burst.py: DEMO_CLIENTS PyMySQL connections, point SELECTs
#   MongoDB (SecantusDB)   scripts/lib/burst.py: DEMO_CLIENTS MongoClients (maxPoolSize=1), find_one
#
# Settings (environment):
#   DEMO_PROTOCOLS="pg mysql mongo"  which protocols to run, in this order (any subset)
#   DEMO_SECONDS=10         duration of each run
#   DEMO_CLIENTS=200        clients in each run
#   DEMO_MAX_CONNECTIONS=20 the servers' connection cap (max_connections)
#   DEMO_POOL_SIZE=10       server connections for maitred and PgBouncer
#   DEMO_THREADS=2          pgbench threads (-j)
#   DEMO_SCRIPT=select      select (pgbench -S) or tpcb (pgbench's default read-write script)
#   MAITRED_BIN=...         use this binary instead of `cargo build --release -p maitred`
#
# Everything runs on 127.0.0.1 in a temp dir and is torn down on exit.
# shellcheck disable=SC2317 # the functions run through the traps and "demo_$p"
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/mariadb.sh
source "$MAITRED_LIB_DIR/mariadb.sh"
# shellcheck source=scripts/lib/secantus.sh
source "$MAITRED_LIB_DIR/secantus.sh"
cd "$REPO_ROOT" || exit 1

DEMO_PROTOCOLS="${DEMO_PROTOCOLS:-pg mysql mongo}"
DEMO_SECONDS="${DEMO_SECONDS:-10}"
DEMO_CLIENTS="${DEMO_CLIENTS:-200}"
DEMO_MAX_CONNECTIONS="${DEMO_MAX_CONNECTIONS:-20}"
DEMO_THREADS="${DEMO_THREADS:-2}"
DEMO_POOL_SIZE="${DEMO_POOL_SIZE:-10}"
DEMO_SCRIPT="${DEMO_SCRIPT:-select}"
case "$DEMO_SCRIPT" in
select) SCRIPT_ARGS=(-S) ;;
tpcb) SCRIPT_ARGS=() ;;
*) die "DEMO_SCRIPT must be select or tpcb, not '$DEMO_SCRIPT'" ;;
esac
for v in DEMO_SECONDS DEMO_CLIENTS DEMO_MAX_CONNECTIONS DEMO_THREADS DEMO_POOL_SIZE; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
PROTOCOLS=()
for p in $DEMO_PROTOCOLS; do
    case "$p" in
    pg | postgres | postgresql) PROTOCOLS+=(pg) ;;
    mysql | mariadb) PROTOCOLS+=(mysql) ;;
    mongo | mongodb | secantus) PROTOCOLS+=(mongo) ;;
    *) die "DEMO_PROTOCOLS: unknown protocol '$p' (pg, mysql, mongo)" ;;
    esac
done
((${#PROTOCOLS[@]} > 0)) || die "DEMO_PROTOCOLS names no protocol"
wants() {
    local p
    for p in "${PROTOCOLS[@]}"; do [[ "$p" == "$1" ]] && return 0; done
    return 1
}

WORK=""
PG_DIR=""
MY_DIR=""
MONGO_DIR=""
MAITRED_PID=""

stop_maitred() {
    if [[ -n "$MAITRED_PID" ]]; then
        kill_pid "$MAITRED_PID" 5
        wait "$MAITRED_PID" 2>/dev/null
        MAITRED_PID=""
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_maitred
    if [[ -n "$WORK" ]]; then
        stop_pgbouncer "$WORK/pgbouncer"
    fi
    [[ -n "$PG_DIR" ]] && stop_pg "$PG_DIR"
    [[ -n "$MY_DIR" ]] && stop_mariadb "$MY_DIR"
    [[ -n "$MONGO_DIR" ]] && stop_secantus "$MONGO_DIR"
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

DEPS=(python)
wants pg && DEPS+=(pg client pgbouncer)
wants mysql && DEPS+=(mariadb)
ensure_deps "${DEPS[@]}" || die "ensure_deps failed"
PY="$VENV_DIR/bin/python"
BURST="$MAITRED_LIB_DIR/burst.py"
# burst.py peak counts SecantusDB's connections with ss.
if wants mongo && ! command -v ss >/dev/null 2>&1; then
    apt_install iproute2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/maitred-demo.XXXXXX")"
chmod 755 "$WORK"

# --- maitred -------------------------------------------------------------------
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
RUN_START=$SECONDS

# start_maitred <label> <upstream url> [flags...]: sets M_PORT and MAITRED_PID, or fails
# (the reason in MAITRED_NOTE).
M_PORT=""
start_maitred() {
    local label=$1 upstream=$2 port
    shift 2
    [[ -n "$BIN" ]] || return 1
    port="$(free_port)"
    log "starting maitred on 127.0.0.1:$port in front of $label (pool size $DEMO_POOL_SIZE)"
    # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
    RUST_LOG="${RUST_LOG:-info}" setsid "$BIN" --listen "127.0.0.1:$port" --upstream "$upstream" \
        --pool-size "$DEMO_POOL_SIZE" "$@" </dev/null >"$WORK/maitred-$label.log" 2>&1 &
    MAITRED_PID=$!
    if ! wait_for_port "$port" 10 127.0.0.1 "$MAITRED_PID"; then
        MAITRED_NOTE="maitred did not start in front of $label (see the log lines above)"
        tail -n 20 "$WORK/maitred-$label.log" >&2
        stop_maitred
        return 1
    fi
    M_PORT=$port
}

# maitred_still_up <label>: warn when maitred died during a run.
maitred_still_up() {
    if ! kill -0 "$MAITRED_PID" 2>/dev/null; then
        warn "maitred exited during the $1 run; last log lines:"
        tail -n 20 "$WORK/maitred-$1.log" >&2
    fi
}

# --- results -------------------------------------------------------------------
# A row: protocol|path|clients|clients_with_errors|errors|ok|ok_per_s|peak
ROWS=()
# The first error each server gave straight: "protocol|message".
FIRST_ERRORS=()

no_run() { ROWS+=("$1|$2|$DEMO_CLIENTS|-|-|-|-|-"); }

# peak_of <file>: the peak written by burst.py peak, or '-'.
peak_of() { [[ -s "$1" ]] && head -n1 "$1" || echo -; }

# --- PostgreSQL ----------------------------------------------------------------

# pgbench_run <path> <url>: one pgbench run; its failure is a result, not an error.
pgbench_run() {
    local path=$1 url=$2 out="$WORK/pgbench-$1.out" peak="$WORK/peak-pg-$1" rc=0
    log "pgbench ${SCRIPT_ARGS[*]} -c $DEMO_CLIENTS -j $DEMO_THREADS -T $DEMO_SECONDS -n -> PostgreSQL $path"
    PGCONNECT_TIMEOUT=30 "$PY" "$BURST" peak --pg "host=$PG_DIR port=$PG_PORT user=$PG_SUPER_USER dbname=postgres" \
        --out "$peak" -- timeout --kill-after=10 $((DEMO_SECONDS + 120)) \
        pgbench "${SCRIPT_ARGS[@]}" -c "$DEMO_CLIENTS" -j "$DEMO_THREADS" -T "$DEMO_SECONDS" -n \
        "$url" >"$out" 2>&1 || rc=$?
    local conn_err failed aborted tps processed
    conn_err="$(grep -c 'could not create connection' "$out")"
    if ((conn_err == 0)); then
        conn_err="$(grep -cE 'connection to server .* failed|too many clients|remaining connection slots' "$out")"
    fi
    aborted="$(grep -cE 'client [0-9]+ aborted|aborted in command' "$out")"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)"
    processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n1)"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)"
    [[ -n "$tps" ]] && tps="$(printf '%.0f' "$tps")"
    local bad=$((conn_err + aborted)) errs=$((conn_err + aborted + ${failed:-0}))
    if ((rc != 0)) && [[ -z "$processed" ]] && grep -q 'could not create connection' "$out"; then
        # pgbench exits at the first connection the server refuses: none of its clients ran.
        bad=$DEMO_CLIENTS processed=0 tps=0
    fi
    ROWS+=("PostgreSQL|$path|$DEMO_CLIENTS|$bad|$errs|${processed:--}|${tps:--}|$(peak_of "$peak")")
    local first
    first="$(grep -m1 -oE 'FATAL: .*' "$out")"
    [[ "$path" == straight && -n "$first" ]] && FIRST_ERRORS+=("PostgreSQL|$first")
    if ((rc != 0)); then
        log "pgbench -> $path exited $rc; first error lines:"
        grep -m 3 -iE 'error|fatal|abort' "$out" | cut -c1-200 >&2
    fi
}

demo_pg() {
    PG_DIR="$WORK/pg"
    PG_PORT="$(free_port)"
    log "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT with max_connections=$DEMO_MAX_CONNECTIONS"
    PG_TLS=off start_pg "$PG_DIR" "$PG_PORT" "$DEMO_MAX_CONNECTIONS"
    local direct_url
    direct_url="$(pg_app_url "$PG_PORT")"
    log "pgbench -i -s 1 (directly)"
    pgbench -i -s 1 -q "$direct_url" >"$WORK/pgbench-init.log" 2>&1 || {
        cat "$WORK/pgbench-init.log" >&2
        die "pgbench -i failed"
    }
    pgbench_run straight "$direct_url"
    if start_maitred postgres "$direct_url" --pool-mode transaction; then
        pgbench_run maitred "postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$M_PORT/$PG_APP_DB"
        maitred_still_up postgres
    else
        no_run PostgreSQL maitred
    fi
    # Each pooler keeps its server connections open when idle, and the server allows only
    # DEMO_MAX_CONNECTIONS: stop maitred before PgBouncer runs, so each gets its full pool.
    stop_maitred
    local b_port
    b_port="$(free_port)"
    log "starting PgBouncer on 127.0.0.1:$b_port (pool size $DEMO_POOL_SIZE, transaction mode)"
    start_pgbouncer "$WORK/pgbouncer" "$b_port" "$PG_DIR" "$PG_PORT" "$DEMO_POOL_SIZE" transaction
    pgbench_run PgBouncer "postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$b_port/$PG_APP_DB"
    stop_pgbouncer "$WORK/pgbouncer"
    stop_pg "$PG_DIR"
    PG_DIR=""
}

# --- MySQL and MongoDB: scripts/lib/burst.py ----------------------------------

# burst_run <protocol label> <burst protocol> <path> <url> <peak flags...>
burst_run() {
    local label=$1 proto=$2 path=$3 url=$4 out="$WORK/burst-$2-$3.out" peak="$WORK/peak-$2-$3" rc=0
    shift 4
    log "burst.py: $DEMO_CLIENTS $label clients for ${DEMO_SECONDS}s -> $label $path"
    "$PY" "$BURST" peak "$@" --out "$peak" -- timeout --kill-after=10 $((DEMO_SECONDS + 120)) \
        "$PY" "$BURST" load "$proto" "$url" --clients "$DEMO_CLIENTS" --seconds "$DEMO_SECONDS" \
        >"$out" 2>&1 || rc=$?
    local line kv c_bad=- errs=- ok=- rate=- first
    line="$(grep -m1 '^clients=' "$out")"
    for kv in $line; do
        case "$kv" in
        clients_with_errors=*) c_bad=${kv#*=} ;;
        errors=*) errs=${kv#*=} ;;
        ok=*) ok=${kv#*=} ;;
        ops_per_s=*) rate=${kv#*=} ;;
        esac
    done
    ROWS+=("$label|$path|$DEMO_CLIENTS|$c_bad|$errs|$ok|$rate|$(peak_of "$peak")")
    first="$(sed -n 's/^first_error=//p' "$out" | head -n1)"
    # SecantusDB gives no error of its own: it closes a connection over its cap at once.
    [[ "$proto" == mongo && -n "$first" ]] && first="$first (SecantusDB closes connections over its cap)"
    [[ "$path" == straight && -n "$first" ]] && FIRST_ERRORS+=("$label|$first")
    if [[ -z "$line" || $rc -ne 0 ]]; then
        log "burst.py -> $label $path exited $rc; its output:"
        tail -n 5 "$out" | cut -c1-200 >&2
    fi
}

demo_mysql() {
    MY_DIR="$WORK/mariadb"
    local port
    port="$(free_port)"
    log "starting MariaDB on 127.0.0.1:$port with max_connections=$DEMO_MAX_CONNECTIONS"
    start_mariadb "$MY_DIR" "$port" "$DEMO_MAX_CONNECTIONS"
    # Without CONNECTION ADMIN, so the app gets max_connections and not the one more
    # that MariaDB keeps for administrators (the sampler of burst.py peak takes that one).
    mariadb_root "$MY_DIR" -e "REVOKE CONNECTION ADMIN ON *.* FROM '$MY_APP_USER'@'%', '$MY_APP_USER'@'localhost'" ||
        warn "could not revoke CONNECTION ADMIN from $MY_APP_USER"
    local direct_url peak_flags=(--mysql-socket "$MY_DIR/mysql.sock")
    direct_url="$(mariadb_app_url "$port")"
    burst_run MySQL mysql straight "$direct_url" "${peak_flags[@]}"
    if start_maitred mysql "$direct_url" --pool-mode transaction; then
        burst_run MySQL mysql maitred "$(mariadb_app_url "$M_PORT")" "${peak_flags[@]}"
        maitred_still_up mysql
    else
        no_run MySQL maitred
    fi
    stop_maitred
    stop_mariadb "$MY_DIR"
    MY_DIR=""
}

demo_mongo() {
    MONGO_DIR="$WORK/secantus"
    local port
    port="$(free_port)"
    log "starting SecantusDB on 127.0.0.1:$port with max_connections=$DEMO_MAX_CONNECTIONS"
    start_secantus "$MONGO_DIR" "$port" "$DEMO_MAX_CONNECTIONS"
    local direct_url peak_flags=(--tcp-port "$port" --pid "$(cat "$MONGO_DIR/secantus.pid")")
    direct_url="$(mongo_app_url "$port")"
    burst_run MongoDB mongo straight "$direct_url" "${peak_flags[@]}"
    if start_maitred mongo "$direct_url"; then
        burst_run MongoDB mongo maitred "$(mongo_app_url "$M_PORT")" "${peak_flags[@]}"
        maitred_still_up mongo
    else
        no_run MongoDB maitred
    fi
    stop_maitred
    stop_secantus "$MONGO_DIR"
    MONGO_DIR=""
}

for p in "${PROTOCOLS[@]}"; do
    "demo_$p"
done

# --- table ---------------------------------------------------------------------
echo
echo "$DEMO_CLIENTS clients for ${DEMO_SECONDS}s per run; each server allows $DEMO_MAX_CONNECTIONS connections;" \
    "maitred and PgBouncer: $DEMO_POOL_SIZE server connections, transaction mode"
wants pg && echo "  PostgreSQL 15: pgbench ${SCRIPT_ARGS[*]:-(tpcb-like)} -j $DEMO_THREADS -n"
wants mysql && echo "  MySQL (MariaDB): burst.py, a PyMySQL connection per client, SELECT by primary key"
wants mongo && echo "  MongoDB (SecantusDB): burst.py, a MongoClient (maxPoolSize=1) per client, find_one by _id"
fmt='%-11s %-10s %7s %14s %7s %9s %7s %17s\n'
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" protocol path clients failed_clients errors ok ok/s peak_server_conns
# shellcheck disable=SC2059
printf "$fmt" ----------- ---------- ------- -------------- ------- --------- ------- -----------------
for row in "${ROWS[@]}"; do
    IFS='|' read -r proto path c bad errs ok rate peak <<<"$row"
    # shellcheck disable=SC2059
    printf "$fmt" "$proto" "$path" "$c" "$bad" "$errs" "$ok" "$rate" "$peak"
done
if ((${#FIRST_ERRORS[@]} > 0)); then
    echo
    echo "straight to the server, the first error the clients got:"
    for e in "${FIRST_ERRORS[@]}"; do
        printf '  %-11s %s\n' "${e%%|*}" "$(cut -c1-150 <<<"${e#*|}")"
    done
fi
[[ -n "$MAITRED_NOTE" ]] && echo "maitred: $MAITRED_NOTE"
echo
cat <<'NOTES'
failed_clients: clients that got an error (pgbench exits at the first connection refused, so
  then all of them); errors: all the errors they got (a burst.py client tries again 0.5 s
  after an error).
ok, ok/s: pgbench transactions or burst.py requests that succeeded, and per second; straight
  to a server, only the clients that got a connection did any.
peak_server_conns: the most client connections at once, as the server counts them
  (PostgreSQL: pg_stat_activity, where 3 of max_connections are kept for superusers;
  MariaDB: Max_used_connections; SecantusDB: the sockets it accepted, from ss).
The client tools differ by protocol: compare the paths of one protocol, not the protocols.
NOTES
echo "(the demo took ${SECONDS}s, of which the runs $((SECONDS - RUN_START))s)"
exit 0
