"""The compatibility matrix (issue 22, "drop-in means drop-in"): real client libraries,
each running a short script of what applications do (tests/python/compat/), straight to
the server, through maitred in session mode, through maitred in transaction mode, and for
PostgreSQL through PgBouncer in transaction mode. Writes docs/compatibility.md.

Each client script prints one JSON line per check: {"check": ..., "ok": ..., "detail": ...}.
What is asserted, per client:
  - straight to the server, every check passes;
  - through maitred (session and transaction mode), every check that passed straight
    passes too, except the entries of KNOWN_DIFFERENCES, each with its reason;
  - the PgBouncer column is for comparison only: it is recorded, never asserted.
A client whose toolchain is missing (no node, no javac, no driver) is marked skipped.

Environment: the servers of scripts/test.sh (MAITRED_TEST_PG_URL, MAITRED_TEST_MYSQL_URL,
MAITRED_TEST_MONGO_URL, MAITRED_TEST_PG_DATADIR for PgBouncer's copy of the app's secret).
docs/compatibility.md is written only by a run of the whole matrix (not under -k of one
client).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import REPO, Maitred, free_port, is_ci, maitred_bin, port_open, swap_host_port

COMPAT = pathlib.Path(__file__).resolve().parent / "compat"
DOC = REPO / "docs" / "compatibility.md"
NODE_MODULES = pathlib.Path(os.environ.get("VENV_DIR", REPO / ".venv")) / "node" / "node_modules"
JAVA_SHARE = pathlib.Path("/usr/share/java")
PG_JDBC_JAR = JAVA_SHARE / "postgresql.jar"
MARIADB_JAR = JAVA_SHARE / "mariadb-java-client.jar"
# Each client's script, in each path, must end within this (a few seconds is normal).
RUN_TIMEOUT = 90
# maitred's pool, PgBouncer's pool: the scripts open at most ~5 connections at once, and the
# servers allow 20 (PostgreSQL keeps 3 for superusers); PgBouncer's idle server connections
# stay while the other paths run.
POOL_SIZE = "5"
PGBOUNCER_POOL = "4"

PATHS = {
    "direct": "straight",
    "session": "maitred session",
    "transaction": "maitred transaction",
    "pgbouncer": "PgBouncer transaction",
}
PROTOCOL_PATHS = {
    "pg": ["direct", "session", "transaction", "pgbouncer"],
    "mysql": ["direct", "session", "transaction"],
    # maitred pools MongoDB per request whatever the mode (docs/mongodb.md): both are run.
    "mongo": ["direct", "session", "transaction"],
}
PROTOCOL_NAMES = {"pg": "PostgreSQL", "mysql": "MySQL (MariaDB)", "mongo": "MongoDB (SecantusDB)"}
URL_ENV = {"pg": "MAITRED_TEST_PG_URL", "mysql": "MAITRED_TEST_MYSQL_URL", "mongo": "MAITRED_TEST_MONGO_URL"}

CHECKS = {
    "connect": "connect and SELECT 1 (ping for MongoDB); create the scratch table",
    "pool": "the library's pool (or 3 connections) of 3, 9 tasks at once",
    "prepared": "a parameterized query run 8 times as a server-side prepared statement "
    "(PyMySQL and SQLAlchemy: their parameter binding)",
    "simple": "a query without parameters (PostgreSQL: two statements in one simple Query)",
    "transaction": "a transaction with an error (1/0, a duplicate key), rolled back; "
    "nothing committed, the connection usable",
    "notify": "LISTEN on one connection, NOTIFY from another, delivered within 5 s; the "
    "listener's own NOTIFY comes back with the pid it was told",
    "cancel": "pg_sleep(10) / SLEEP(10) cancelled after 0.5 s by the client's cancel "
    "(PostgreSQL CancelRequest; MySQL KILL QUERY of the id the handshake gave), usable after",
    "pid": "the backend pid the client was told (BackendKeyData) = SELECT pg_backend_pid()",
    "thread_id": "the connection id of the handshake = SELECT CONNECTION_ID()",
    "large": "a 50000-row result (MongoDB: 10000 documents inserted, then read with getMores)",
    "copy": "COPY FROM STDIN of 1000 rows, then COPY TO STDOUT",
    "load_data": "LOAD DATA LOCAL INFILE of 1000 rows",
    "crud": "insert, update, find, aggregate, delete",
}
PG_ALL = ("connect", "pool", "prepared", "simple", "transaction", "notify", "cancel", "pid", "large", "copy")
MY_ALL = ("connect", "pool", "prepared", "simple", "transaction", "cancel", "thread_id", "large", "load_data")
MONGO_ALL = ("connect", "pool", "crud", "transaction", "large")

# Differences from straight that the test accepts, each with its reason. Keys are
# (client or "*", path, check). A cell that fails and is not here fails the test; an entry
# that no longer fails is reported in docs/compatibility.md, so it can be removed.
KNOWN_DIFFERENCES = {
    # In transaction mode there is no one backend to name: each transaction may run on
    # another server connection. PgBouncer behaves the same.
    # In session mode the client is told its server connection's pid (docs/postgres.md,
    # "Process ids"); its own notifications carry the pid it was told in every mode.
    ("*", "transaction", "pid"): "transaction mode: each transaction may run on another server "
    "connection, so no pid can equal pg_backend_pid() every time; the client is told maitred's "
    "own id, which its own notifications carry (PgBouncer: its own id, notifications carry the "
    "server's pid)",
    # Seen once in three runs of the pytest stage (load average ~7): the 50000-row query after
    # the cancel check failed with 57014. node-postgres sends its CancelRequest and does not
    # wait; the cancel reached the server connection after it had passed to another client.
    # Fixed 2026-12-08 (a connection released while its client's cancel is in flight is
    # closed, docs/postgres.md "Cancel requests"); the entry stays until CI has shown the fix
    # under load, then goes (the doc reports it if it no longer fails).
    ("node-pg", "transaction", "large"): "was intermittent (1 run in 3, under load): a late "
    "CancelRequest cancelling the next client's query; fixed 2026-12-08, kept until CI confirms",
}


def known(client: str, path: str, check: str) -> str | None:
    return KNOWN_DIFFERENCES.get((client, path, check)) or KNOWN_DIFFERENCES.get(("*", path, check))


@dataclasses.dataclass
class Client:
    name: str
    protocol: str
    checks: tuple
    kind: str  # python, node, java, rust
    script: str
    java_cp: pathlib.Path | None = None
    module: str | None = None  # Python: the import that must work
    node_module: str | None = None
    label: str = ""


CLIENTS = [
    Client("psycopg", "pg", PG_ALL, "python", "pg_psycopg.py", module="psycopg_pool", label="psycopg 3 (+ psycopg_pool)"),
    Client("asyncpg", "pg", PG_ALL, "python", "pg_asyncpg.py", module="asyncpg", label="asyncpg"),
    Client(
        "sqlalchemy",
        "pg",
        ("connect", "pool", "prepared", "simple", "transaction", "pid", "large"),
        "python",
        "pg_sqlalchemy.py",
        module="sqlalchemy",
        label="SQLAlchemy 2 on psycopg",
    ),
    Client("node-pg", "pg", PG_ALL, "node", "pg_node.js", node_module="pg-copy-streams", label="node-postgres (npm pg)"),
    Client("pgjdbc", "pg", PG_ALL, "java", "PgJdbc.java", java_cp=PG_JDBC_JAR, label="pgjdbc"),
    Client("pymysql", "mysql", MY_ALL, "python", "my_pymysql.py", module="pymysql", label="PyMySQL"),
    Client("mysql-connector", "mysql", MY_ALL, "python", "my_connector.py", module="mysql.connector", label="mysql-connector-python"),
    Client("mysql2", "mysql", MY_ALL, "node", "my_mysql2.js", node_module="mysql2", label="mysql2 (npm)"),
    Client("mariadb-j", "mysql", MY_ALL, "java", "MariadbJ.java", java_cp=MARIADB_JAR, label="MariaDB Connector/J"),
    Client("pymongo", "mongo", MONGO_ALL, "python", "mongo_pymongo.py", module="pymongo", label="pymongo"),
    Client("node-mongodb", "mongo", MONGO_ALL, "node", "mongo_node.js", node_module="mongodb", label="Node.js mongodb driver"),
    # tests/python/compat/mongo_rust.rs, the example compat_mongo of maitred-e2e.
    Client("rust-mongodb", "mongo", MONGO_ALL, "rust", "compat_mongo", label="Rust mongodb driver"),
]

# client name -> {"skipped": reason} or {"paths": {path: {"checks": {check: (ok, detail)},
# "error": str, "seconds": float}}}
RESULTS: dict[str, dict] = {}


def _versions() -> dict[str, str]:
    """Library versions for the document (best effort)."""
    import importlib.metadata as md

    out = {}
    for name, dist in [
        ("psycopg", "psycopg"),
        ("asyncpg", "asyncpg"),
        ("sqlalchemy", "SQLAlchemy"),
        ("pymysql", "PyMySQL"),
        ("mysql-connector", "mysql-connector-python"),
        ("pymongo", "pymongo"),
    ]:
        try:
            out[name] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    lock = (REPO / "Cargo.lock").read_text()
    marker = 'name = "mongodb"\nversion = "'
    if marker in lock:
        out["rust-mongodb"] = lock.split(marker, 1)[1].split('"', 1)[0]
    for name, pkg in [("node-pg", "pg"), ("mysql2", "mysql2"), ("node-mongodb", "mongodb")]:
        try:
            out[name] = json.loads((NODE_MODULES / pkg / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            pass
    for name, deb in [("pgjdbc", "libpostgresql-jdbc-java"), ("mariadb-j", "libmariadb-java")]:
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", deb], capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                out[name] = r.stdout.strip()
        except OSError:
            pass
    return out


class PgBouncer:
    """PgBouncer in transaction mode before the test PostgreSQL (scripts/lib/pgbouncer.sh)."""

    def __init__(self, pg_url: str) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="compat-pgbouncer-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        pg_dir = pathlib.Path(os.environ["MAITRED_TEST_PG_DATADIR"]).parent
        pg_port = pg_url.rsplit(":", 1)[1].split("/")[0]
        script = 'source "$1/scripts/lib/common.sh" && shift && start_pgbouncer "$@"'
        r = subprocess.run(
            ["bash", "-c", script, "_", str(REPO), str(self.dir), str(self.port), str(pg_dir), pg_port, PGBOUNCER_POOL, "transaction"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0 or not port_open(self.port):
            raise RuntimeError(f"PgBouncer did not start: {r.stdout}\n{r.stderr}")
        self.url = swap_host_port(pg_url, "127.0.0.1", self.port)

    def stop(self) -> None:
        script = 'source "$1/scripts/lib/common.sh" && stop_pgbouncer "$2"'
        subprocess.run(["bash", "-c", script, "_", str(REPO), str(self.dir)], capture_output=True, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def matrix():
    """Collects RESULTS; at the end of a whole run, writes docs/compatibility.md."""
    t0 = time.monotonic()
    state = {"pgbouncer": None, "java_dir": None}
    yield state
    if state["pgbouncer"] is not None and not isinstance(state["pgbouncer"], str):
        state["pgbouncer"].stop()
    if state["java_dir"]:
        shutil.rmtree(state["java_dir"], ignore_errors=True)
    if all(c.name in RESULTS for c in CLIENTS):
        DOC.write_text(render(time.monotonic() - t0))
        print(f"wrote {DOC}")


def server_url(protocol: str) -> str:
    url = os.environ.get(URL_ENV[protocol], "").strip()
    if not url:
        if is_ci():
            pytest.fail(f"{URL_ENV[protocol]} is not set but CI=true: run scripts/test.sh")
        pytest.skip(f"skipping: {URL_ENV[protocol]} is not set (run scripts/test.sh)")
    return url


def pgbouncer(state, pg_url: str):
    """The module's one PgBouncer, or the reason it is missing (a str)."""
    if state["pgbouncer"] is None:
        if not (shutil.which("pgbouncer") or pathlib.Path("/usr/sbin/pgbouncer").exists()):
            state["pgbouncer"] = "pgbouncer is not installed"
        elif not os.environ.get("MAITRED_TEST_PG_DATADIR"):
            state["pgbouncer"] = "MAITRED_TEST_PG_DATADIR is not set"
        else:
            try:
                state["pgbouncer"] = PgBouncer(pg_url)
            except Exception as e:  # noqa: BLE001
                state["pgbouncer"] = f"PgBouncer did not start: {e}"[:300]
    return state["pgbouncer"]


def java_classes(state) -> pathlib.Path | str:
    """Both Java clients compiled once (javac), or the reason they cannot be."""
    if state["java_dir"] is None:
        javac, java = shutil.which("javac"), shutil.which("java")
        if not javac or not java:
            return "no JDK (javac, java)"
        d = tempfile.mkdtemp(prefix="compat-java-")
        state["java_dir"] = d
        for src, jar in [("PgJdbc.java", PG_JDBC_JAR), ("MariadbJ.java", MARIADB_JAR)]:
            if jar.exists():
                r = subprocess.run(
                    [javac, "-nowarn", "-d", d, "-cp", str(jar), str(COMPAT / src)], capture_output=True, text=True, timeout=120
                )
                if r.returncode != 0:
                    (pathlib.Path(d) / f"{src}.error").write_text(r.stdout + r.stderr)
    return pathlib.Path(state["java_dir"])


def command(client: Client, state) -> list[str] | str:
    """The command that runs the client's script, or why it cannot run (a str)."""
    if client.kind == "python":
        try:
            __import__(client.module)
        except ImportError as e:
            return f"{client.module} is not installed ({e})"
        return [sys.executable, str(COMPAT / client.script)]
    if client.kind == "node":
        node = shutil.which("node")
        if not node:
            return "node is not installed"
        if not (NODE_MODULES / client.node_module).is_dir():
            return f"npm module {client.node_module} is not installed in {NODE_MODULES}"
        return [node, str(COMPAT / client.script)]
    if client.kind == "rust":
        # Beside the maitred binary the tests use: cargo build --workspace --all-targets
        # (the build stage) builds the examples too.
        exe = maitred_bin().parent / "examples" / client.script
        if not exe.is_file():
            return f"{exe} is not built (cargo build -p maitred-e2e --example {client.script})"
        return [str(exe)]
    if not client.java_cp.exists():
        return f"{client.java_cp} is missing (Debian libpostgresql-jdbc-java / libmariadb-java)"
    d = java_classes(state)
    if isinstance(d, str):
        return d
    cls = client.script.removesuffix(".java")
    err = d / f"{client.script}.error"
    if err.exists():
        return f"javac failed: {err.read_text()[:300]}"
    return [shutil.which("java"), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{d}:{client.java_cp}", cls]


def run_script(cmd: list[str], url: str, tag: str) -> tuple[dict, str, float]:
    env = dict(os.environ, URL=url, TAG=tag, NODE_PATH=str(NODE_MODULES), PYTHONPATH=str(COMPAT))
    t0 = time.monotonic()
    error = ""
    try:
        r = subprocess.run(cmd, env=env, cwd=COMPAT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        out, code, stderr = r.stdout, r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        code, stderr = None, f"timed out after {RUN_TIMEOUT}s"
    checks = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                d = json.loads(line)
                checks[d["check"]] = (bool(d["ok"]), str(d.get("detail", "")))
            except (ValueError, KeyError):
                pass
    if code != 0:
        tail = " ".join(stderr.strip().splitlines()[-3:])[:300]
        error = f"exit {code}: {tail}"
    return checks, error, time.monotonic() - t0


def tag(client: str, path: str) -> str:
    return f"{client}_{path}".replace("-", "_")


@pytest.mark.parametrize("client", CLIENTS, ids=[c.name for c in CLIENTS])
def test_compat(client: Client, matrix):
    url = server_url(client.protocol)
    cmd = command(client, matrix)
    if isinstance(cmd, str):
        RESULTS[client.name] = {"skipped": cmd}
        pytest.skip(f"{client.name}: {cmd}")
    paths: dict[str, dict] = {}
    RESULTS[client.name] = {"paths": paths}
    for path in PROTOCOL_PATHS[client.protocol]:
        m = None
        if path == "direct":
            target = url
        elif path == "pgbouncer":
            pb = pgbouncer(matrix, url)
            if isinstance(pb, str):
                paths[path] = {"skipped": pb}
                continue
            target = pb.url
        else:
            m = Maitred(url, "--pool-size", POOL_SIZE, "--pool-mode", path, "--queue-timeout", "10s")
            target = m.url
        try:
            checks, error, seconds = run_script(cmd, target, tag(client.name, path))
        finally:
            if m is not None:
                crashed = not m.alive()
                m.stop()
                if crashed:
                    error = f"maitred exited: {m.log()[-300:]}"
        for check in client.checks:
            if check not in checks:
                checks[check] = (False, f"not reported ({error or 'the script stopped before it'})")
        paths[path] = {"checks": checks, "error": error, "seconds": seconds}

    problems = []
    direct = paths["direct"]["checks"]
    for check in client.checks:
        if not direct[check][0]:
            problems.append(f"straight: {check} fails: {direct[check][1]}")
    for path in ("session", "transaction"):
        for check in client.checks:
            ok, detail = paths[path]["checks"][check]
            if direct[check][0] and not ok and not known(client.name, path, check):
                problems.append(f"{PATHS[path]}: {check} fails (not a known difference): {detail}")
    assert not problems, f"{client.label}:\n  " + "\n  ".join(problems)


def render(seconds: float) -> str:
    versions = _versions()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Compatibility matrix",
        "",
        "<!-- Generated by tests/python/test_compat_matrix.py (scripts/test.sh pytest). Do not edit:",
        "     change the client scripts in tests/python/compat/ or the test, and run it again. -->",
        "",
        f"Generated by `tests/python/test_compat_matrix.py` on {now}; the whole matrix took "
        f"{seconds:.0f} s. Each real client library runs a short script of what applications do "
        "(tests/python/compat/) straight to the server, through maitred in session mode and in "
        "transaction mode (pool of 5), and, for PostgreSQL, through PgBouncer in transaction mode "
        f"(pool of {PGBOUNCER_POOL}, for comparison). The servers are those of `scripts/test.sh`: "
        "PostgreSQL 15, MariaDB 10.11, SecantusDB (MongoDB wire protocol).",
        "",
        "A cell reads `passed/run`; the checks that failed follow, `(known)` when they are on the "
        "test's list of known differences. The test fails when a check fails straight, or fails "
        "through maitred without being a known difference. The PgBouncer column is never asserted.",
        "",
        "| client | version | protocol | " + " | ".join(PATHS.values()) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in PATHS) + " |",
    ]
    diffs = []
    stale = []
    for c in CLIENTS:
        res = RESULTS.get(c.name, {})
        row = [c.label, versions.get(c.name, ""), PROTOCOL_NAMES[c.protocol]]
        if "skipped" in res:
            row += [f"skipped ({res['skipped']})"] + ["" for _ in range(len(PATHS) - 1)]
            lines.append("| " + " | ".join(row) + " |")
            continue
        for path in PATHS:
            if path not in PROTOCOL_PATHS[c.protocol]:
                row.append("n/a")
                continue
            cell = res["paths"].get(path)
            if cell is None:
                row.append("not run")
                continue
            if "skipped" in cell:
                row.append(f"skipped ({cell['skipped']})")
                continue
            failed = []
            for check in c.checks:
                ok, detail = cell["checks"][check]
                reason = known(c.name, path, check)
                if not ok:
                    failed.append(f"{check}{' (known)' if reason and path != 'direct' else ''}")
                    if path == "pgbouncer":
                        reason = "PgBouncer (for comparison, not asserted)"
                    diffs.append((c.label, PATHS[path], check, detail, reason or "**new: not a known difference**"))
                elif reason and path in ("session", "transaction") and not reason.startswith("intermittent"):
                    stale.append((c.label, PATHS[path], check))
            n = len(c.checks)
            text = f"{n - len(failed)}/{n}"
            if failed:
                text += ": ✗ " + ", ".join(failed)
            else:
                text = "✓ " + text
            row.append(text + f" ({cell['seconds']:.1f} s)")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Checks", ""]
    for check, what in CHECKS.items():
        lines.append(f"- `{check}`: {what}.")
    lines += [
        "",
        "Not every client offers every check: SQLAlchemy's notifications, cancel and COPY are "
        "psycopg's; MySQL has no notifications; MongoDB's checks are connect, pool, CRUD, a "
        "transaction, and a large cursor. maitred pools MongoDB per request whatever the mode, "
        "so its two maitred columns run the same way.",
        "",
        "Through maitred, MySQL clients see maitred's connection ids in the handshake, and "
        "`CONNECTION_ID()` and `KILL QUERY <id>` are rewritten to match (docs/mysql.md), so "
        "`thread_id` and `cancel` pass; PostgreSQL clients are told their server connection's pid "
        "in session mode and maitred's own id in transaction mode (the known `pid` difference "
        "below), and their own notifications carry the pid they were told. PgBouncer's failures with prepared statements "
        "(pgjdbc, asyncpg, psycopg's automatic preparation) depend on which server connection "
        "each statement lands on, so that column can change from one run to the next.",
        "",
        "## Differences",
        "",
    ]
    if diffs:
        lines += ["| client | path | check | what happened | reason |", "| --- | --- | --- | --- | --- |"]
        for d in diffs:
            lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in d) + " |")
    else:
        lines.append("None.")
    if stale:
        lines += ["", "Known differences that did not show in this run (remove them from the list once fixed):", ""]
        for s in stale:
            lines.append(f"- {s[0]}, {s[1]}: `{s[2]}`")
    lines += [
        "",
        "## Known differences (the test's list)",
        "",
    ]
    for (client, path, check), reason in KNOWN_DIFFERENCES.items():
        lines.append(f"- {'every client' if client == '*' else client}, {PATHS[path]}, `{check}`: {reason}.")
    return "\n".join(lines) + "\n"
