# shellcheck shell=bash
# ensure_deps [component...]: install what the scripts need, idempotently.
#
# Components (default: all of them):
#   pg         PostgreSQL 15 server binaries (initdb, postgres, pg_ctl, pgbench)
#   client     psql
#   pgbouncer  the pgbouncer binary (its packaged service is never started)
#   python     the repo's .venv with tests/python/requirements.txt installed
#   node       Node.js and npm (apt, when missing), and the mongodb, pg (+ pg-copy-streams)
#              and mysql2 drivers in .venv/node
#   java       a JDK (java, javac) and the JDBC drivers pgjdbc and MariaDB Connector/J
#              (Debian packages; the compatibility matrix, tests/python/test_compat_matrix.py)
#
# Each check is a file/command lookup first, so a re-run on a ready machine
# costs nothing. apt-get update runs at most once per script run, and only
# when something is missing.

_APT_UPDATED=""

_as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# apt_install <pkg...>: quiet, non-interactive, never starts packaged services.
apt_install() {
    (($# > 0)) || return 0
    log "installing with apt: $*"
    local aptlog rc=0 made_policy=""
    aptlog="$(mktemp)"
    if [[ -z "$_APT_UPDATED" ]]; then
        _as_root apt-get update -qq >"$aptlog" 2>&1 || {
            cat "$aptlog" >&2
            rm -f "$aptlog"
            die "apt-get update failed"
        }
        _APT_UPDATED=1
    fi
    # Packaged services (postgresql's main cluster, pgbouncer's own instance)
    # must not start: we run our own instances on free ports. A policy-rc.d
    # that exits 101 makes invoke-rc.d skip them. Leave an existing one alone.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        _as_root sh -c 'printf "#!/bin/sh\n# temporary, from maitred scripts/lib/deps.sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        made_policy=1
    fi
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >>"$aptlog" 2>&1 || rc=$?
    if [[ -n "$made_policy" ]]; then
        _as_root rm -f /usr/sbin/policy-rc.d
    fi
    if ((rc != 0)); then
        cat "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get install $* failed"
    fi
    rm -f "$aptlog"
}

_python_for_venv() {
    # Prefer the python3 on PATH (may be pyenv's); fall back to Debian's.
    local py
    for py in "$(command -v python3 2>/dev/null)" /usr/bin/python3; do
        if [[ -n "$py" && -x "$py" ]] && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
PY_REQUIREMENTS="$REPO_ROOT/tests/python/requirements.txt"

ensure_venv() {
    local stamp="$VENV_DIR/.maitred-requirements.sha256" want have py
    want="$(sha256sum "$PY_REQUIREMENTS" | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ -x "$VENV_DIR/bin/python" && "$want" == "$have" ]] &&
        "$VENV_DIR/bin/python" -c 'import psycopg, pytest' >/dev/null 2>&1; then
        return 0
    fi
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        if ! py="$(_python_for_venv)"; then
            apt_install python3-venv
            py="$(_python_for_venv)" || die "python3 -m venv still unusable after installing python3-venv"
        fi
        log "creating $VENV_DIR with $py"
        "$py" -m venv "$VENV_DIR" || die "could not create $VENV_DIR"
    fi
    log "installing Python test requirements into $VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$PY_REQUIREMENTS" || die "pip install -r $PY_REQUIREMENTS failed"
    echo "$want" >"$stamp"
}

NODE_DRIVER_DIR="$VENV_DIR/node"
NODE_MONGODB_VERSION="6.22.0"
NODE_PG_VERSION="8.16.3"
NODE_PG_COPY_STREAMS_VERSION="7.0.0"
NODE_MYSQL2_VERSION="3.24.5"

_node_module_is() { # <module> <version>
    [[ -f "$NODE_DRIVER_DIR/node_modules/$1/package.json" ]] &&
        grep -q "\"version\": \"$2\"" "$NODE_DRIVER_DIR/node_modules/$1/package.json"
}

# ensure_node_driver: the Node.js drivers for tests/python/test_mongo_node.py, test_pg_node.py
# and the compatibility matrix (test_compat_matrix.py). Without npm those tests skip (the
# matrix marks the Node.js clients skipped); nothing is installed system-wide.
ensure_node_driver() {
    command -v npm >/dev/null 2>&1 || return 0
    _node_module_is mongodb "$NODE_MONGODB_VERSION" && _node_module_is pg "$NODE_PG_VERSION" &&
        _node_module_is pg-copy-streams "$NODE_PG_COPY_STREAMS_VERSION" &&
        _node_module_is mysql2 "$NODE_MYSQL2_VERSION" && return 0
    log "installing the Node.js drivers (mongodb $NODE_MONGODB_VERSION, pg $NODE_PG_VERSION," \
        "pg-copy-streams $NODE_PG_COPY_STREAMS_VERSION, mysql2 $NODE_MYSQL2_VERSION) into $NODE_DRIVER_DIR"
    mkdir -p "$NODE_DRIVER_DIR"
    npm install --silent --no-audit --no-fund --prefix "$NODE_DRIVER_DIR" \
        "mongodb@$NODE_MONGODB_VERSION" "pg@$NODE_PG_VERSION" \
        "pg-copy-streams@$NODE_PG_COPY_STREAMS_VERSION" "mysql2@$NODE_MYSQL2_VERSION" >/dev/null ||
        warn "npm install of the Node.js drivers failed; the Node.js tests will skip"
}

ensure_deps() {
    local components=("$@") c missing=()
    ((${#components[@]} > 0)) || components=(pg client pgbouncer python)
    for c in "${components[@]}"; do
        case "$c" in
        pg)
            [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/pgbench" ]] ||
                missing+=(postgresql-15)
            command -v openssl >/dev/null 2>&1 || missing+=(openssl)
            ;;
        client)
            command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
            ;;
        pgbouncer)
            command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
            # The side-by-side benches count CPU per transaction with these.
            [[ -x /usr/bin/time ]] || missing+=(time)
            command -v pgrep >/dev/null 2>&1 || missing+=(procps)
            ;;
        mariadb)
            command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] ||
                missing+=(mariadb-server)
            command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
            command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
            ;;
        python) ;;
        node)
            command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
            ;;
        java)
            { command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1; } ||
                missing+=(default-jdk-headless)
            [[ -f /usr/share/java/postgresql.jar ]] || missing+=(libpostgresql-jdbc-java)
            [[ -f /usr/share/java/mariadb-java-client.jar ]] || missing+=(libmariadb-java)
            ;;
        *) die "ensure_deps: unknown component '$c'" ;;
        esac
    done
    apt_install "${missing[@]}"
    # pgbench on PATH is Debian's wrapper; fall back to the real binary.
    if ! command -v pgbench >/dev/null 2>&1; then
        PATH="$PATH:$PG_BIN"
    fi
    ensure_service_user
    for c in "${components[@]}"; do
        [[ "$c" == python ]] && ensure_venv
        [[ "$c" == node ]] && ensure_node_driver
    done
    return 0
}
