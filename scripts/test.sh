#!/usr/bin/env bash
# The whole check suite, as CI runs it (.ci/run execs this).
#
#   scripts/test.sh            # all stages
#   scripts/test.sh test pytest   # only some stages (fmt clippy build test pytest)
#   CARGO_TEST_ARGS="--test pg_e2e" scripts/test.sh test   # some test targets only
#
# Starts a throwaway PostgreSQL 15 (max_connections 20) on a free port and
# exports, for the tests:
#   MAITRED_TEST_PG_URL            postgres://app:app_secret@127.0.0.1:PORT/app
#   MAITRED_TEST_PG_SUPERUSER_URL  postgres://postgres:postgres_secret@127.0.0.1:PORT/app
#   MAITRED_TEST_MONGO_URL         mongodb://app:app_secret@127.0.0.1:PORT/app?authSource=admin
#                                  (SecantusDB, max_connections 20)
#   MAITRED_TEST_MYSQL_URL         mysql://app:app_secret@127.0.0.1:PORT/app
#                                  (MariaDB, max_connections 20)
#   MAITRED_TEST_MYSQL_SOCKET      that MariaDB's Unix socket
#   MAITRED_BIN                    target/debug/maitred (for the Python tests)
#   MAITRED_TEST_PIDDIR            where spawned maitred processes record their pid
#   MAITRED_TEST_PG_DATADIR, MAITRED_TEST_PG_CTL  the cluster's data dir and pg_ctl
#                                  (tests that restart the server)
# Everything is torn down on every exit path. Ends with "N passed, M failed"
# over the stages and exits non-zero if any stage failed.
set -uo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/secantus.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/secantus.sh"
# shellcheck source=scripts/lib/mariadb.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mariadb.sh"
cd "$REPO_ROOT" || exit 1

ALL_STAGES=(fmt clippy build test pytest)
if (($# > 0)); then
    STAGES=("$@")
else
    STAGES=("${ALL_STAGES[@]}")
fi
for s in "${STAGES[@]}"; do
    [[ " ${ALL_STAGES[*]} " == *" $s "* ]] || die "unknown stage '$s' (stages: ${ALL_STAGES[*]})"
done
wants() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
needs_pg() { wants test || wants pytest; }

PASSED=()
FAILED=()
SKIPPED=()
WORK=""
PG_DIR=""
MONGO_DIR=""
MY_DIR=""
SUITE_START=$SECONDS

summary() {
    echo
    echo "stages passed: ${PASSED[*]:-none}"
    ((${#FAILED[@]} > 0)) && echo "stages FAILED: ${FAILED[*]}"
    ((${#SKIPPED[@]} > 0)) && echo "stages skipped: ${SKIPPED[*]}"
    echo "total time: $((SECONDS - SUITE_START))s"
    if ((${#SKIPPED[@]} > 0)); then
        echo "${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
    else
        echo "${#PASSED[@]} passed, ${#FAILED[@]} failed"
    fi
}

# Kill the maitred processes the tests started and left behind (the testkit
# and conftest.py record each pid in MAITRED_TEST_PIDDIR); only by pid, and
# only if that pid is still a maitred.
kill_recorded_maitreds() {
    local f pid exe
    [[ -n "$WORK" && -d "$WORK/pids" ]] || return 0
    for f in "$WORK/pids"/*; do
        [[ -e "$f" ]] || continue
        pid="$(basename "$f")"
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
        if [[ "$(basename "${exe% (deleted)}")" == maitred ]]; then
            warn "killing leftover maitred (pid $pid)"
            kill_pid "$pid" 3
        fi
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    kill_recorded_maitreds
    if [[ -n "$PG_DIR" ]]; then
        stop_pg "$PG_DIR"
    fi
    if [[ -n "$MONGO_DIR" ]]; then
        stop_secantus "$MONGO_DIR"
    fi
    if [[ -n "$MY_DIR" ]]; then
        stop_mariadb "$MY_DIR"
    fi
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

# Hang guards per stage, in seconds (a normal run needs far less: see the
# per-stage times printed below). timeout(1) signals the whole process group,
# so a hung test binary under cargo dies too.
declare -A STAGE_LIMIT=([fmt]=120 [clippy]=900 [build]=900 [test]=900 [pytest]=600)

# run_stage <name> <cmd...>
run_stage() {
    local name=$1 start=$SECONDS rc=0
    shift
    echo
    log "stage $name: $*"
    timeout --kill-after=20 "${STAGE_LIMIT[$name]}" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        warn "stage $name hit its ${STAGE_LIMIT[$name]}s limit"
    fi
    if ((rc == 0)); then
        PASSED+=("$name")
        log "stage $name passed ($((SECONDS - start))s)"
    else
        FAILED+=("$name")
        log "stage $name FAILED with exit code $rc ($((SECONDS - start))s)"
    fi
    return "$rc"
}

skip_stage() {
    SKIPPED+=("$1")
    log "stage $1 skipped: $2"
}

# --- setup -------------------------------------------------------------------
deps=(client)
needs_pg && deps+=(pg)
needs_pg && deps+=(python)
wants pytest && deps+=(node java pgbouncer)
needs_pg && deps+=(mariadb)
log "checking dependencies: ${deps[*]}"
ensure_deps "${deps[@]}" || die "ensure_deps failed"

if needs_pg; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/maitred-test.XXXXXX")"
    chmod 755 "$WORK"
    mkdir -p "$WORK/pids"
    PG_DIR="$WORK/pg"
    PG_PORT="$(free_port)"
    log "starting PostgreSQL 15 on 127.0.0.1:$PG_PORT (max_connections 20) in $PG_DIR"
    start_pg "$PG_DIR" "$PG_PORT" 20
    export MAITRED_TEST_PG_URL MAITRED_TEST_PG_SUPERUSER_URL MAITRED_TEST_PIDDIR MAITRED_BIN
    MAITRED_TEST_PG_URL="$(pg_app_url "$PG_PORT")"
    MAITRED_TEST_PG_SUPERUSER_URL="$(pg_super_url "$PG_PORT")"
    # The test cluster speaks TLS too; its CA signs a certificate for 127.0.0.1 that
    # the TLS tests also give to maitred's listeners.
    export MAITRED_TEST_PG_TLS_DIR="$PG_DIR/tls"
    # For the tests that restart the server (maitred_testkit::pg_server).
    export MAITRED_TEST_PG_DATADIR="$PG_DIR/data" MAITRED_TEST_PG_CTL="$PG_BIN/pg_ctl"
    MAITRED_TEST_PIDDIR="$WORK/pids"
    MAITRED_BIN="${MAITRED_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/maitred}"
    # Temp files of the tests (maitred logs kept after a failure) go here and
    # are removed with everything else.
    mkdir -p "$WORK/tmp"
    log "MAITRED_TEST_PG_URL=$MAITRED_TEST_PG_URL"
    MONGO_DIR="$WORK/mongo"
    MONGO_PORT="$(free_port)"
    log "starting SecantusDB on 127.0.0.1:$MONGO_PORT (max_connections 20) in $MONGO_DIR"
    start_secantus "$MONGO_DIR" "$MONGO_PORT" 20
    export MAITRED_TEST_MONGO_URL
    MAITRED_TEST_MONGO_URL="$(mongo_app_url "$MONGO_PORT")"
    log "MAITRED_TEST_MONGO_URL=$MAITRED_TEST_MONGO_URL"
    MY_DIR="$WORK/mariadb"
    MY_PORT="$(free_port)"
    log "starting MariaDB on 127.0.0.1:$MY_PORT (max_connections 20) in $MY_DIR"
    start_mariadb "$MY_DIR" "$MY_PORT" 20 "$PG_DIR/tls"
    export MAITRED_TEST_MYSQL_URL
    MAITRED_TEST_MYSQL_URL="$(mariadb_app_url "$MY_PORT")"
    log "MAITRED_TEST_MYSQL_URL=$MAITRED_TEST_MYSQL_URL"
    export MAITRED_TEST_MYSQL_SOCKET="$MY_DIR/mysql.sock"
fi

# --- stages ------------------------------------------------------------------
build_ok=1
wants fmt && run_stage fmt cargo fmt --all --check
wants clippy && run_stage clippy cargo clippy --workspace --all-targets -- -D warnings
if wants build; then
    run_stage build cargo build --workspace --all-targets || build_ok=0
fi

if wants test; then
    if ((build_ok)); then
        # The e2e tests share one PostgreSQL capped at 20 connections; they
        # serialize themselves (maitred_testkit::serial), so the default
        # thread count is safe.
        # CARGO_TEST_ARGS narrows the stage while developing, e.g.
        # CARGO_TEST_ARGS="--test pg_e2e" scripts/test.sh test
        # shellcheck disable=SC2086
        TMPDIR="$WORK/tmp" run_stage test cargo test --workspace --no-fail-fast ${CARGO_TEST_ARGS:-}
    else
        skip_stage test "the build failed"
    fi
fi

if wants pytest; then
    if ((build_ok)); then
        TMPDIR="$WORK/tmp" run_stage pytest "$VENV_DIR/bin/python" -m pytest tests/python -q -rs --timeout 180
    else
        skip_stage pytest "the build failed"
    fi
fi

if ((${#FAILED[@]} > 0)) && [[ -n "$PG_DIR" && -f "$PG_DIR/postgres.log" ]]; then
    echo
    log "last lines of the PostgreSQL log ($PG_DIR/postgres.log):"
    tail -n 30 "$PG_DIR/postgres.log" >&2
fi

if ((${#FAILED[@]} > 0)) && [[ -n "$MY_DIR" && -f "$MY_DIR/mariadb.log" ]]; then
    echo
    log "last lines of the MariaDB log ($MY_DIR/mariadb.log):"
    tail -n 30 "$MY_DIR/mariadb.log" >&2
fi

summary
((${#FAILED[@]} == 0 && ${#SKIPPED[@]} == 0))
