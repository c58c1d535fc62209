#!/usr/bin/env bash
# Side by side, one command: straight to the server vs through maitred vs through PgBouncer
# (PostgreSQL only), for PostgreSQL, MySQL (MariaDB) and MongoDB (SecantusDB), each server
# throwaway and capped at max_connections 20. Regenerates the tables and plots of
# docs/benchmarks.md.
#
#   benches/compare.sh            # full: 3 rounds x 10 s runs, 10/50/100/200 clients,
#                                 #       10,000 idle clients; writes docs/benchmarks.md
#   benches/compare.sh --quick    # smoke: 1 round x 2 s runs, 10/50 clients, 500 idle
#                                 #       clients; writes only the results directory
#
# Per protocol and round, interleaved so drift on a shared machine hits every target
# (straight, maitred, PgBouncer, then the next round): steady load at each client count
# (straight: only as many clients as the server allows, STRAIGHT_CLIENTS), steady load with
# 1 client (added latency), and a connection storm. Then idle clients: resident memory of
# maitred and PgBouncer per client. Every run is maitred-bench with the real driver crates;
# its JSON lands in OUT, and `maitred-bench report` folds them into medians, tables and SVGs.
#
# Environment (defaults in brackets; --quick changes the starred ones):
#   ROUNDS [3*]  SECS [10*]  STEPS ["10 50 100 200"*]  IDLE_CLIENTS [10000*]
#   STORM_CLIENTS [50]  POOL_SIZE [10]  SERVER_MAX [20]  STRAIGHT_CLIENTS [10]
#   MONGO_STRAIGHT_CLIENTS [5] (each MongoDB driver client also opens monitor connections)
#   PROTOCOLS ["postgres mysql mongodb"]  ROWS [10000]
#   OUT [target/bench-results/<time>]  DOC [docs/benchmarks.md; --quick: OUT/benchmarks.md]
#   PLOTS [docs/benchmarks; --quick: OUT/plots]
#   MAITRED_BIN / BENCH_BIN: use these binaries instead of cargo build --release
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=scripts/lib/mariadb.sh
source "$REPO_ROOT/scripts/lib/mariadb.sh"
# shellcheck source=scripts/lib/secantus.sh
source "$REPO_ROOT/scripts/lib/secantus.sh"
cd "$REPO_ROOT" || exit 1

QUICK=0
ARGS="$*"
for a in "$@"; do
    case "$a" in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown argument $a (only --quick)" ;;
    esac
done

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
if ((QUICK)); then
    ROUNDS="${ROUNDS:-1}" SECS="${SECS:-2}" STEPS="${STEPS:-10 50}" IDLE_CLIENTS="${IDLE_CLIENTS:-500}"
else
    ROUNDS="${ROUNDS:-3}" SECS="${SECS:-10}" STEPS="${STEPS:-10 50 100 200}" IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
fi
STORM_CLIENTS="${STORM_CLIENTS:-50}"
POOL_SIZE="${POOL_SIZE:-10}"
SERVER_MAX="${SERVER_MAX:-20}"
STRAIGHT_CLIENTS="${STRAIGHT_CLIENTS:-10}"
MONGO_STRAIGHT_CLIENTS="${MONGO_STRAIGHT_CLIENTS:-5}"
PROTOCOLS="${PROTOCOLS:-postgres mysql mongodb}"
ROWS="${ROWS:-10000}"
OUT="${OUT:-$REPO_ROOT/target/bench-results/$STAMP}"
if ((QUICK)); then
    DOC="${DOC:-$OUT/benchmarks.md}" PLOTS="${PLOTS:-$OUT/plots}"
else
    DOC="${DOC:-$REPO_ROOT/docs/benchmarks.md}" PLOTS="${PLOTS:-$REPO_ROOT/docs/benchmarks}"
fi
for v in ROUNDS SECS IDLE_CLIENTS STORM_CLIENTS POOL_SIZE SERVER_MAX STRAIGHT_CLIENTS MONGO_STRAIGHT_CLIENTS ROWS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done

# Each idle client holds a socket in maitred-bench and one in the proxy.
want_fds=$((IDLE_CLIENTS * 2 + 1024))
if (($(ulimit -n) < want_fds)); then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" ||
        warn "could not raise the open files limit; idle runs may fail"
fi

ensure_deps pg client pgbouncer python mariadb || die "ensure_deps failed"

if [[ -z "${MAITRED_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
    log "cargo build --release -p maitred -p maitred-bench"
    cargo build --release -q -p maitred -p maitred-bench || die "release build failed"
fi
MAITRED_BIN="${MAITRED_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/maitred}"
BENCH_BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/maitred-bench}"
[[ -x "$MAITRED_BIN" && -x "$BENCH_BIN" ]] || die "missing $MAITRED_BIN or $BENCH_BIN"

mkdir -p "$OUT" || die "cannot create $OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/maitred-compare.XXXXXX")"
chmod 755 "$WORK"
MPID=""
cleanup() {
    trap - EXIT INT TERM
    kill_pid "$MPID" 5
    stop_pgbouncer "$WORK/pgb" 2>/dev/null
    [[ -d "$WORK/pg" ]] && stop_pg "$WORK/pg"
    [[ -d "$WORK/mariadb" ]] && stop_mariadb "$WORK/mariadb"
    [[ -d "$WORK/mongo" ]] && stop_secantus "$WORK/mongo"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

declare -A URL
for p in $PROTOCOLS; do
    port="$(free_port)"
    case "$p" in
    postgres)
        log "PostgreSQL 15 on $port (no TLS), max_connections $SERVER_MAX"
        PG_TLS=off start_pg "$WORK/pg" "$port" "$SERVER_MAX"
        PG_PORT=$port
        URL[$p]="$(pg_app_url "$port")"
        ;;
    mysql)
        log "MariaDB on $port, max_connections $SERVER_MAX"
        start_mariadb "$WORK/mariadb" "$port" "$SERVER_MAX"
        URL[$p]="$(mariadb_app_url "$port")"
        ;;
    mongodb)
        log "SecantusDB on $port, max_connections $SERVER_MAX"
        start_secantus "$WORK/mongo" "$port" "$SERVER_MAX"
        URL[$p]="$(mongo_app_url "$port")"
        ;;
    *) die "PROTOCOLS: postgres, mysql, mongodb; not $p" ;;
    esac
    "$BENCH_BIN" setup "${URL[$p]}" --rows "$ROWS" >/dev/null || die "setup of $p failed"
done

# --- what the report says about the machine and the settings ---------------------------
{
    echo "date: $(date -u '+%F %H:%M UTC'), maitred $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
    echo "machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "servers: $("$PG_BIN/postgres" --version 2>/dev/null), $(pgbouncer --version 2>/dev/null | head -1), $(mariadb --version 2>/dev/null | sed 's/,.*//'), SecantusDB $("$REPO_ROOT/.venv/bin/pip" show SecantusDB 2>/dev/null | sed -n 's/^Version: //p')"
} >"$OUT/machine.txt"
{
    echo "command: \`benches/compare.sh $ARGS\`$( ((QUICK)) && echo ' (smoke test: short runs, one round; not figures to quote)')"
    echo "each server max_connections $SERVER_MAX; maitred and PgBouncer 1.18: pool of $POOL_SIZE server connections, transaction mode, SCRAM-SHA-256 logins; straight: $STRAIGHT_CLIENTS clients (MongoDB: $MONGO_STRAIGHT_CLIENTS driver clients, each also opens monitor connections), the most the server takes"
    echo "$ROUNDS round(s), interleaved (straight, maitred, PgBouncer within each round), ${SECS} s per run, medians over the rounds; clients: maitred-bench (tokio-postgres, mysql_async, mongodb crates) on the same machine"
    echo "workloads: PostgreSQL and MySQL point select by primary key ($ROWS rows; PostgreSQL unnamed extended-protocol statements, MySQL text protocol), MongoDB insert_one + find_one by _id; storm: $STORM_CLIENTS clients each connect, run one unit, disconnect"
} >"$OUT/settings.txt"

# --- runs ------------------------------------------------------------------------------
TARGET_URL=""

# start_target <protocol> <target>: sets TARGET_URL (and MPID for maitred).
start_target() {
    local p=$1 t=$2 port
    case "$t" in
    straight) TARGET_URL="${URL[$p]}" ;;
    maitred)
        port="$(free_port)"
        # setsid: a session of its own, as a service runs (see "Sessions" in scripts/lib/common.sh).
        setsid "$MAITRED_BIN" --listen "127.0.0.1:$port" --upstream "${URL[$p]}" --pool-size "$POOL_SIZE" \
            --pool-mode transaction --log-level warn </dev/null >>"$OUT/maitred-$p.log" 2>&1 &
        MPID=$!
        wait_for_port "$port" 10 127.0.0.1 "$MPID" || die "maitred did not start (see $OUT/maitred-$p.log)"
        TARGET_URL="$(sed -E "s#@127\.0\.0\.1:[0-9]+#@127.0.0.1:$port#" <<<"${URL[$p]}")"
        ;;
    pgbouncer)
        port="$(free_port)"
        PGBOUNCER_MAX_CLIENT_CONN=$((IDLE_CLIENTS + 1000)) \
            start_pgbouncer "$WORK/pgb" "$port" "$WORK/pg" "$PG_PORT" "$POOL_SIZE" transaction >/dev/null 2>&1 ||
            die "PgBouncer did not start"
        TARGET_URL="postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$port/$PG_APP_DB"
        ;;
    esac
}

target_pid() {
    case "$1" in
    maitred) echo "$MPID" ;;
    pgbouncer) cat "$WORK/pgb/pgbouncer.pid" ;;
    esac
}

stop_target() {
    case "$1" in
    maitred) kill_pid "$MPID" 5; wait "$MPID" 2>/dev/null; MPID="" ;;
    pgbouncer) stop_pgbouncer "$WORK/pgb" ;;
    esac
}

# bench <mode> <protocol> <target> <round> <clients> [extra args]: one maitred-bench run.
bench() {
    local mode=$1 p=$2 t=$3 r=$4 c=$5
    shift 5
    "$BENCH_BIN" "$mode" "$TARGET_URL" --clients "$c" --duration "${SECS}s" --rows "$ROWS" \
        --label "target=$t" --label "round=$r" --json "$OUT/run-$p-$mode-$t-c$c-r$r.json" "$@" \
        2>>"$OUT/progress.log" || warn "maitred-bench $mode $p $t $c clients failed"
}

targets_of() {
    case "$1" in
    postgres) echo "straight maitred pgbouncer" ;;
    *) echo "straight maitred" ;;
    esac
}

for p in $PROTOCOLS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in $(targets_of "$p"); do
            log "$p round $r/$ROUNDS: $t"
            start_target "$p" "$t"
            if [[ "$t" == straight ]]; then
                steps=$STRAIGHT_CLIENTS
                [[ "$p" == mongodb ]] && steps=$MONGO_STRAIGHT_CLIENTS
                storm=$steps
            else
                steps=$STEPS
                storm=$STORM_CLIENTS
            fi
            for c in $steps; do bench steady "$p" "$t" "$r" "$c"; done
            bench steady "$p" "$t" "$r" 1
            bench storm "$p" "$t" "$r" "$storm"
            stop_target "$t"
        done
    done
done

# Idle clients: a fresh proxy each, so "before" is its empty footprint.
for p in $PROTOCOLS; do
    [[ "$p" == mongodb ]] && continue # each driver client is 2-3 sockets; not comparable
    for t in $(targets_of "$p"); do
        [[ "$t" == straight ]] && continue
        log "$p idle: $IDLE_CLIENTS clients through $t"
        start_target "$p" "$t"
        "$BENCH_BIN" idle "$TARGET_URL" "$IDLE_CLIENTS" "$(target_pid "$t")" --rows "$ROWS" \
            --label "target=$t" --label round=1 --json "$OUT/run-$p-idle-$t.json" \
            2>>"$OUT/progress.log" || warn "idle $p $t failed"
        stop_target "$t"
    done
done

log "report: $DOC, plots in $PLOTS, results in $OUT"
"$BENCH_BIN" report "$OUT" --doc "$DOC" --plots "$PLOTS" || die "report failed"
awk '/^Measured ratios:/{on=1; next} on && /^### /{exit} on && NF' "$DOC"
