"""mysql-connector-python (pure-Python mode) and PyMySQL over TLS to maitred's MySQL
listener, and caching_sha2_password as a MySQL server does it: the first login of a user
needs full authentication (this client sends the password in clear, so only inside TLS),
later logins take the fast path, over TLS or not.

Environment (set by scripts/test.sh): MAITRED_TEST_MYSQL_URL and MAITRED_TEST_PG_TLS_DIR
(the test CA and a certificate for 127.0.0.1); without them the tests skip, except under
CI=true where they fail.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time
import urllib.parse

import pytest

pymysql = pytest.importorskip("pymysql")
mysql_connector = pytest.importorskip("mysql.connector")

from conftest import free_port, is_ci, maitred_bin, port_open  # noqa: E402


def required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        if is_ci():
            pytest.fail(f"{name} is not set but CI=true: run scripts/test.sh")
        pytest.skip(f"skipping: no {name} (run scripts/test.sh)")
    return value


@pytest.fixture
def tls_maitred(tmp_path):
    """maitred with one MySQL pool whose listener has the test certificate."""
    url = required_env("MAITRED_TEST_MYSQL_URL")
    tls = pathlib.Path(required_env("MAITRED_TEST_PG_TLS_DIR"))
    u = urllib.parse.urlsplit(url)
    key = tmp_path / "server.key"
    shutil.copy(tls / "server.key", key)
    key.chmod(0o600)
    port = free_port()
    cfg = tmp_path / "maitred.toml"
    cfg.write_text(f"""
[[pools]]
name = "mysql-tls"
listen = "127.0.0.1:{port}"
upstream = "{url}"
size = 2
tls_cert = "{tls / 'server.pem'}"
tls_key = "{key}"
  [[pools.users]]
  name = "{urllib.parse.unquote(u.username or '')}"
  password = "{urllib.parse.unquote(u.password or '')}"
""")
    log = open(tmp_path / "maitred.log", "wb")
    proc = subprocess.Popen([str(maitred_bin()), "--config", str(cfg)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = {"port": port, "ca": str(tls / "ca.pem"), "user": urllib.parse.unquote(u.username),
            "password": urllib.parse.unquote(u.password), "database": u.path.lstrip("/")}
    yield info
    proc.terminate()
    proc.wait(10)
    log.close()
    print((tmp_path / "maitred.log").read_text())


def connector(m: dict, tls: bool, password: str | None = None):
    return mysql_connector.connect(
        host="127.0.0.1", port=m["port"], user=m["user"],
        password=m["password"] if password is None else password,
        database=m["database"], use_pure=True, auth_plugin="caching_sha2_password",
        connection_timeout=10, autocommit=True,
        **({"ssl_ca": m["ca"], "ssl_verify_cert": True} if tls else {"ssl_disabled": True}),
    )


def test_caching_sha2_cold_needs_tls_then_fast_path(tls_maitred):
    m = tls_maitred
    # Cold cache, plain connection: the client would send its password in clear; refused.
    with pytest.raises(mysql_connector.Error) as e:
        connector(m, tls=False)
    assert e.value.errno == 1045
    # Cold cache, TLS: full authentication with the password inside TLS.
    with pytest.raises(mysql_connector.Error) as e:
        connector(m, tls=True, password="wrong")
    assert e.value.errno == 1045
    conn = connector(m, tls=True)
    cur = conn.cursor()
    cur.execute("SELECT 6 * 7")
    assert cur.fetchone() == (42,)
    conn.close()
    # Warm cache: the fast path, over TLS and over a plain connection.
    for tls in (True, False):
        conn = connector(m, tls=tls)
        cur = conn.cursor()
        cur.execute("SELECT 'warm'")
        assert cur.fetchone() == ("warm",)
        conn.close()


def test_pymysql_over_tls(tls_maitred):
    m = tls_maitred
    conn = pymysql.connect(host="127.0.0.1", port=m["port"], user=m["user"],
                           password=m["password"], database=m["database"],
                           ssl_ca=m["ca"], ssl_verify_cert=True, connect_timeout=10)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 + 1")
        assert cur.fetchone() == (2,)
    assert conn._sock.version().startswith("TLS")
    conn.close()
