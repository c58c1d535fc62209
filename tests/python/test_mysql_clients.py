"""PyMySQL and mysql-connector-python (pure-Python mode) through maitred in front of a
throwaway MariaDB capped at 20 connections.

Environment (set by scripts/test.sh):
  MAITRED_TEST_MYSQL_URL  mysql://app:app_secret@127.0.0.1:PORT/app; without it the tests
                          skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import threading
import urllib.parse

import pytest

pymysql = pytest.importorskip("pymysql")
mysql_connector = pytest.importorskip("mysql.connector")

from conftest import Maitred, is_ci  # noqa: E402


@pytest.fixture(scope="session")
def mysql_url() -> str:
    url = os.environ.get("MAITRED_TEST_MYSQL_URL", "").strip()
    if not url:
        if is_ci():
            pytest.fail("MAITRED_TEST_MYSQL_URL is not set but CI=true: run scripts/test.sh")
        pytest.skip("skipping: no MariaDB (run scripts/test.sh)")
    return url


@pytest.fixture
def start_maitred(mysql_url):
    started: list[Maitred] = []

    def _start(*args: str) -> Maitred:
        m = Maitred(mysql_url, *args)
        started.append(m)
        return m

    yield _start
    for m in started:
        crashed = not m.alive()
        m.stop()
        print(f"--- maitred log ({m.log_path}) ---\n{m.log()}\n--- end ---")
        assert not crashed, f"maitred exited during the test:\n{m.log()}"


def parts(url: str) -> dict:
    u = urllib.parse.urlsplit(url)
    return {
        "host": u.hostname,
        "port": u.port,
        "user": urllib.parse.unquote(u.username or ""),
        "password": urllib.parse.unquote(u.password or ""),
        "database": u.path.lstrip("/"),
    }


def pymysql_connect(m: Maitred, **kw):
    p = parts(m.url)
    return pymysql.connect(
        host=p["host"],
        port=p["port"],
        user=kw.pop("user", p["user"]),
        password=kw.pop("password", p["password"]),
        database=p["database"],
        connect_timeout=10,
        **kw,
    )


def connector_connect(m: Maitred, **kw):
    p = parts(m.url)
    return mysql_connector.connect(
        host=p["host"],
        port=p["port"],
        user=p["user"],
        password=kw.pop("password", p["password"]),
        database=p["database"],
        use_pure=True,
        ssl_disabled=True,
        connection_timeout=10,
        **kw,
    )


def test_pymysql_queries_transactions_and_autocommit(start_maitred):
    m = start_maitred("--pool-size", "2")
    conn = pymysql_connect(m)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS py_t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("DELETE FROM py_t")
    conn.commit()
    # PyMySQL runs with autocommit off: rows appear for others only after commit().
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO py_t VALUES (%s, %s)", [(1, "a"), (2, "b")])
    other = pymysql_connect(m, autocommit=True)
    with other.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM py_t")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT @@autocommit")
        assert cur.fetchone() == (1,)
    conn.commit()
    with other.cursor() as cur:
        cur.execute("SELECT v FROM py_t ORDER BY id")
        assert cur.fetchall() == (("a",), ("b",))
    with conn.cursor() as cur:
        cur.execute("SELECT @@autocommit")
        assert cur.fetchone() == (0,)
        cur.execute("DROP TABLE py_t")
    conn.commit()
    conn.ping()
    conn.close()
    other.close()


def test_pymysql_wrong_password_is_1045(start_maitred):
    m = start_maitred("--pool-size", "2")
    with pytest.raises(pymysql.err.OperationalError) as e:
        pymysql_connect(m, password="wrong")
    assert e.value.args[0] == 1045


def test_pymysql_user_variables_stay_with_their_client(start_maitred):
    m = start_maitred("--pool-size", "1", "--queue-timeout", "10s")
    a = pymysql_connect(m, autocommit=True)
    with a.cursor() as cur:
        cur.execute("SET @mine = 7")
        cur.execute("SELECT @mine")
        assert cur.fetchone() == (7,)
    a.close()
    b = pymysql_connect(m, autocommit=True)
    with b.cursor() as cur:
        cur.execute("SELECT @mine")
        assert cur.fetchone() == (None,)
    b.close()


def test_pymysql_many_threads_over_pool_of_three(start_maitred):
    m = start_maitred("--pool-size", "3", "--queue-timeout", "20s")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = pymysql_connect(m, autocommit=True)
            with c.cursor() as cur:
                for i in range(20):
                    cur.execute("SELECT %s + %s", (n, i))
                    assert cur.fetchone() == (n + i,)
            c.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


# caching_sha2_password's first login needs TLS (this client has no RSA): see
# test_mysql_tls_auth.py.
@pytest.mark.parametrize("plugin", ["mysql_native_password"])
def test_mysql_connector_pure_python(start_maitred, plugin):
    m = start_maitred("--pool-size", "2")
    conn = connector_connect(m, auth_plugin=plugin, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT 1 + 1")
    assert cur.fetchone() == (2,)
    # Server-side prepared statements through maitred's statement ids.
    pcur = conn.cursor(prepared=True)
    pcur.execute("SELECT ? * 3", (5,))
    assert pcur.fetchone()[0] == 15
    pcur.execute("SELECT ? * 3", (7,))
    assert pcur.fetchone()[0] == 21
    pcur.close()
    cur.close()
    conn.close()


def test_mysql_connector_wrong_password_is_1045(start_maitred):
    m = start_maitred("--pool-size", "2")
    with pytest.raises(mysql_connector.Error) as e:
        connector_connect(m, password="wrong", auth_plugin="caching_sha2_password")
    assert e.value.errno == 1045


def test_mysql_connector_long_data_over_shared_connections(start_maitred):
    """COM_STMT_SEND_LONG_DATA: file-like parameters are streamed before the execute,
    which must run on the same server connection while other clients share the pool."""
    import io

    m = start_maitred("--pool-size", "1", "--queue-timeout", "10s")
    a = connector_connect(m, autocommit=True)
    b = connector_connect(m, autocommit=True)
    ca = a.cursor(prepared=True)
    cb = b.cursor(prepared=True)
    for n in (100_000, 70_000):
        ca.execute("SELECT LENGTH(?), ?", (io.BytesIO(b"x" * n), 5))
        assert ca.fetchall() == [(n, 5)]
        cb.execute("SELECT ? + 1", (n,))
        assert cb.fetchall() == [(n + 1,)]
    ca.close()
    cb.close()
    a.close()
    b.close()


def test_pymysql_found_rows_follows_its_client(start_maitred):
    """CLIENT_FOUND_ROWS (Django, Connector/J and mysqljs set it): an UPDATE that matches a
    row without changing it counts 1 for such a client and 0 for one without the flag,
    even when both share the one server connection, in either order."""
    from pymysql.constants import CLIENT

    m = start_maitred("--pool-size", "1")
    found = pymysql_connect(m, client_flag=CLIENT.FOUND_ROWS, autocommit=True)
    changed = pymysql_connect(m, autocommit=True)
    table = f"found_rows_{os.getpid()}"
    with changed.cursor() as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
        c.execute(f"INSERT INTO {table} VALUES (1, 7)")
    same_value = f"UPDATE {table} SET v = 7 WHERE id = 1"
    for _ in range(2):
        with found.cursor() as c:
            assert c.execute(same_value) == 1, "CLIENT_FOUND_ROWS: rows matched"
        with changed.cursor() as c:
            assert c.execute(same_value) == 0, "without it: rows changed"
    # Once a connection was reopened for this client, it keeps it: no more logins.
    p = parts(os.environ["MAITRED_TEST_MYSQL_URL"])
    direct = pymysql.connect(**p, connect_timeout=10)

    def server_logins() -> int:
        with direct.cursor() as d:
            d.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
            return int(d.fetchone()[1])

    with found.cursor() as c:
        c.execute(same_value)
        before = server_logins()
        for _ in range(5):
            assert c.execute(same_value) == 1
        assert server_logins() == before, "a client of the connection's kind reopened it"
        c.execute(f"DROP TABLE {table}")
    direct.close()
    found.close()
    changed.close()
