"""psycopg 3 through maitred (transaction pooling) against the real PostgreSQL."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

pytestmark = pytest.mark.timeout(120)

CONNECT_TIMEOUT = 15


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, **kwargs)


_table_counter = 0
_table_lock = threading.Lock()


def unique_table(tag: str) -> str:
    global _table_counter
    with _table_lock:
        _table_counter += 1
        return f"py_{tag}_{os.getpid()}_{_table_counter}"


@pytest.fixture
def table(pg_url):
    """A fresh table (id int primary key, v text), created and dropped directly."""
    name = unique_table("t")
    with connect(pg_url, autocommit=True) as c:
        c.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v text NOT NULL)")
    yield name
    with connect(pg_url, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {name}")


def test_connect_and_simple_query(start_maitred):
    m = start_maitred("--pool-size", "2", "--pool-mode", "transaction")
    with connect(m.url, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("app", "app")
        assert conn.info.server_version >= 150000


def test_parameterized_query(start_maitred):
    m = start_maitred("--pool-size", "2")
    with connect(m.url, autocommit=True) as conn:
        row = conn.execute("SELECT %s::int + %s::int, %s::text || '!'", (40, 2, "hi")).fetchone()
        assert row == (42, "hi!")
        rows = conn.execute(
            "SELECT x, x * %s FROM generate_series(1, %s) AS x ORDER BY x", (3, 4)
        ).fetchall()
        assert rows == [(1, 3), (2, 6), (3, 9), (4, 12)]
        assert conn.execute("SELECT %s::text IS NULL", (None,)).fetchone() == (True,)


def test_transaction_commit_and_rollback(start_maitred, table):
    m = start_maitred("--pool-size", "2", "--pool-mode", "transaction")
    with connect(m.url) as writer, connect(m.url, autocommit=True) as reader:
        with writer.transaction():
            writer.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "committed"))
            # Not visible to another client before COMMIT.
            assert reader.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        assert reader.execute(f"SELECT v FROM {table} WHERE id = 1").fetchone() == ("committed",)

        with writer.transaction():
            writer.execute(f"INSERT INTO {table} VALUES (%s, %s)", (2, "rolled back"))
            raise psycopg.Rollback()
        writer.execute(f"INSERT INTO {table} VALUES (%s, %s)", (3, "explicit rollback"))
        writer.rollback()

        # A failed statement aborts only that transaction.
        with pytest.raises(psycopg.errors.UniqueViolation):
            with writer.transaction():
                writer.execute(f"INSERT INTO {table} VALUES (%s, %s)", (4, "dup"))
                writer.execute(f"INSERT INTO {table} VALUES (%s, %s)", (4, "dup"))
        writer.commit()

        assert reader.execute(f"SELECT id FROM {table} ORDER BY id").fetchall() == [(1,)]
        assert writer.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
        writer.commit()


def test_prepare_threshold_none(start_maitred):
    """With server-side prepares off, psycopg only uses unnamed statements."""
    m = start_maitred("--pool-size", "2", "--pool-mode", "transaction")
    with connect(m.url, autocommit=True, prepare_threshold=None) as conn:
        for i in range(30):
            assert conn.execute("SELECT %s::int * 2, %s::text", (i, f"n{i}")).fetchone() == (
                i * 2,
                f"n{i}",
            )


def test_default_prepare_threshold_correct_or_clean_error(start_maitred):
    """psycopg's default prepares a query after 5 runs as `_pg3_0`, `_pg3_1`,
    ... per connection, so several clients use the same names for different
    SQL on shared server connections. maitred may support or refuse that, but
    a result must never come from another client's statement."""
    m = start_maitred("--pool-size", "2", "--pool-mode", "transaction")
    results = {"ok": 0, "errors": 0}
    lock = threading.Lock()

    def client(i: int) -> None:
        ok = errors = 0
        with connect(m.url, autocommit=True) as conn:
            for n in range(20):
                try:
                    row = conn.execute(f"SELECT %s::int + {i}, {i}::int AS client", (n,)).fetchone()
                except psycopg.DatabaseError:
                    errors += 1
                    continue
                assert row == (n + i, i), f"client {i} got another statement's result: {row}"
                ok += 1
        with lock:
            results["ok"] += ok
            results["errors"] += errors

    with ThreadPoolExecutor(max_workers=6) as pool:
        for f in [pool.submit(client, i) for i in range(6)]:
            f.result(timeout=60)
    print(f"default prepare_threshold: {results}")
    assert results["ok"] + results["errors"] == 6 * 20


def test_50_threads_over_pool_of_5(start_maitred, table):
    m = start_maitred("--pool-size", "5", "--pool-mode", "transaction")

    def worker(i: int) -> int:
        with connect(m.url) as conn:
            assert conn.execute("SELECT %s::int * 3", (i,)).fetchone() == (i * 3,)
            conn.commit()
            with conn.transaction():
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, f"worker {i}"))
                row = conn.execute(f"SELECT v FROM {table} WHERE id = %s", (i,)).fetchone()
                assert row == (f"worker {i}",)
            return i

    with ThreadPoolExecutor(max_workers=50) as pool:
        done = sorted(f.result(timeout=90) for f in [pool.submit(worker, i) for i in range(50)])
    assert done == list(range(50))

    with connect(m.url, autocommit=True, prepare_threshold=None) as conn:
        count, total = conn.execute(f"SELECT count(*), sum(id) FROM {table}").fetchone()
    assert (count, total) == (50, sum(range(50)))
