"""psycopg and asyncpg log in through maitred as roles it has no user list for (auth_user /
auth_query, docs/postgres.md): maitred fetches the role's SCRAM secret with a SECURITY DEFINER
function and logs in to the server as that role."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import tempfile
import time

import asyncpg
import psycopg
import pytest

from conftest import free_port, maitred_bin, port_open, swap_host_port

pytestmark = pytest.mark.timeout(120)

TAG = f"py{os.getpid()}"
ROLE = f"mtd_aq_role_{TAG}"
LOOKUP = f"mtd_aq_lookup_{TAG}"
SCHEMA = f"mtd_aq_{TAG}"


@pytest.fixture
def superuser_url(pg_url) -> str:
    url = os.environ.get("MAITRED_TEST_PG_SUPERUSER_URL", "").strip()
    if not url:
        pytest.fail("MAITRED_TEST_PG_URL is set but MAITRED_TEST_PG_SUPERUSER_URL is not")
    return url


def _drop(superuser_url: str) -> None:
    with psycopg.connect(superuser_url, autocommit=True, connect_timeout=15) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        c.execute(f"DROP ROLE IF EXISTS {ROLE}")
        c.execute(f"DROP ROLE IF EXISTS {LOOKUP}")


@pytest.fixture
def roles(superuser_url):
    _drop(superuser_url)
    with psycopg.connect(superuser_url, autocommit=True, connect_timeout=15) as c:
        c.execute("SET password_encryption = 'scram-sha-256'")
        c.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'role-pw'")
        c.execute(f"CREATE ROLE {LOOKUP} LOGIN PASSWORD 'lookup-pw'")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
        c.execute(
            f"CREATE FUNCTION {SCHEMA}.user_secret(p_user text, OUT usename name, OUT passwd text)"
            " RETURNS SETOF record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog"
            " AS $$ SELECT rolname, rolpassword::text FROM pg_authid"
            " WHERE rolname = p_user AND rolcanlogin $$"
        )
        c.execute(f"REVOKE ALL ON FUNCTION {SCHEMA}.user_secret(text) FROM PUBLIC")
        c.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {LOOKUP}")
        c.execute(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.user_secret(text) TO {LOOKUP}")
    yield
    _drop(superuser_url)


@pytest.fixture
def maitred(pg_url, roles):
    port = free_port()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="maitred-pytest-aq-"))
    config = workdir / "maitred.toml"
    config.write_text(
        f"""[[pools]]
name = "app"
listen = "127.0.0.1:{port}"
upstream = "{pg_url}"
size = 2
auth_user = "{LOOKUP}"
auth_query = "SELECT usename, passwd FROM {SCHEMA}.user_secret($1)"
  [[pools.users]]
  name = "{LOOKUP}"
  password = "lookup-pw"
"""
    )
    log_path = workdir / "maitred.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(maitred_bin()), "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while not port_open(port):
        assert proc.poll() is None, log_path.read_text(errors="replace")
        assert time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    print(log_path.read_text(errors="replace"))


def _url(port: int, password: str) -> str:
    return swap_host_port(f"postgres://{ROLE}:{password}@h/app", "127.0.0.1", port)


def test_psycopg_logs_in_as_the_looked_up_role(maitred):
    with psycopg.connect(_url(maitred, "role-pw"), connect_timeout=15) as c:
        row = c.execute("SELECT current_user, session_user").fetchone()
    assert row == (ROLE, ROLE)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(_url(maitred, "wrong"), connect_timeout=15)


def test_asyncpg_logs_in_as_the_looked_up_role(maitred):
    async def run() -> str:
        conn = await asyncpg.connect(_url(maitred, "role-pw"), timeout=15)
        try:
            # asyncpg prepares every statement: through the role's own pool.
            return await conn.fetchval("SELECT current_user")
        finally:
            await conn.close()

    assert asyncio.run(run()) == ROLE
