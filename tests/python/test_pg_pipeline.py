"""psycopg's pipeline mode through maitred in transaction mode: a statement that fails in a
pipeline returns its error at once, as straight to the server, and leaves no server
connection behind in an aborted transaction (issue "Transaction pooling that cannot leak",
item 0). Every case runs straight and through maitred, with pools of 1 and 2."""

from __future__ import annotations

import os
import socket
import time

import psycopg
import pytest

pytestmark = pytest.mark.timeout(120)

# How long "at once" may take on a loaded 2-core machine.
AT_ONCE = 5.0

FAILING = [
    ("insert into nosuchtable values (%s, %s)", [(1, 2), (3, 4)], False),
    ("copy (select %s, %s) to stdout", [(1, 2), (3, 4)], False),
    ("wat (%s, %s)", [(1, 2), (3, 4)], False),
    ("select 1 / (%s - 3), %s", [(1, 2), (3, 4), (5, 6)], False),
    ("select %s::int + %s::int", [(None, 1), ("x", 2)], True),
]


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=15, **kwargs)


def aborted_backends(pg_url: str) -> int:
    with connect(pg_url, autocommit=True) as c:
        row = c.execute(
            "select count(*) from pg_stat_activity"
            " where state = 'idle in transaction (aborted)' and pid <> pg_backend_pid()"
        ).fetchone()
        return row[0]


def run_failing(url: str, prepare_threshold: int | None) -> list[str]:
    """Each failing executemany on a non-autocommit connection: the error class, in order."""
    seen = []
    for sql, rows, binary in FAILING:
        with connect(url, prepare_threshold=prepare_threshold) as conn:
            cur = conn.cursor(binary=binary)
            start = time.monotonic()
            try:
                cur.executemany(sql, rows)
                seen.append("ok")
            except psycopg.Error as e:
                seen.append(type(e).__name__)
            elapsed = time.monotonic() - start
            assert elapsed < AT_ONCE, f"{sql}: the error took {elapsed:.1f}s"
            conn.rollback()
            assert conn.execute("select 41 + 1").fetchone() == (42,)
    return seen


@pytest.mark.parametrize("pool_size", ["1", "2"])
@pytest.mark.parametrize("prepare_threshold", [None, 0])
def test_failing_executemany_returns_at_once(pg_url, start_maitred, pool_size, prepare_threshold):
    straight = run_failing(pg_url, prepare_threshold)
    m = start_maitred("--pool-size", pool_size, "--pool-mode", "transaction")
    through = run_failing(m.url, prepare_threshold)
    assert through == straight
    for _ in range(50):
        if aborted_backends(pg_url) == 0:
            break
        time.sleep(0.1)
    assert aborted_backends(pg_url) == 0, "a server connection was left in an aborted transaction"


def test_several_syncs_in_flight_with_an_error_between(start_maitred):
    m = start_maitred("--pool-size", "1", "--pool-mode", "transaction")
    for autocommit in (False, True):
        with connect(m.url, autocommit=autocommit) as conn:
            start = time.monotonic()
            with pytest.raises(psycopg.errors.UndefinedTable):
                with conn.pipeline() as p:
                    conn.execute("select 1")
                    p.sync()
                    conn.execute("insert into nosuchtable values (1)")
                    conn.execute("select 2")
                    p.sync()
                    conn.execute("select 3")
            assert time.monotonic() - start < AT_ONCE
            if not autocommit:
                conn.rollback()
            assert conn.execute("select 7").fetchone() == (7,)
        # The only server connection serves the next client.
        with connect(m.url, autocommit=True) as other:
            assert other.execute("select 8").fetchone() == (8,)


def test_a_client_that_vanishes_mid_pipeline_frees_its_connection(pg_url, start_maitred):
    m = start_maitred("--pool-size", "1", "--pool-mode", "transaction", "--queue-timeout", "10s")
    conn = connect(m.url)
    try:
        with conn.pipeline():
            conn.execute("select pg_sleep(0.5)")
            conn.execute("insert into nosuchtable values (1)")
            conn.execute("select 2")
            # Send it all with a Sync, then vanish without reading a reply.
            conn.pgconn.pipeline_sync()
            conn.pgconn.flush()
            s = socket.socket(fileno=os.dup(conn.pgconn.socket))
            s.shutdown(socket.SHUT_RDWR)
            s.close()
            raise ConnectionAbortedError("the client vanished")
    except (ConnectionAbortedError, psycopg.Error):
        pass
    finally:
        try:
            conn.close()
        except psycopg.Error:
            pass
    start = time.monotonic()
    with connect(m.url, autocommit=True) as other:
        assert other.execute("select current_setting('transaction_isolation')").fetchone()
        assert other.execute("select 9").fetchone() == (9,)
    assert time.monotonic() - start < AT_ONCE
    assert aborted_backends(pg_url) == 0
