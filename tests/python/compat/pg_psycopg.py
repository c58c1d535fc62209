"""psycopg 3 (with psycopg_pool): the compatibility matrix's PostgreSQL checks."""

import threading
import time

import psycopg
from psycopg_pool import ConnectionPool

from _checks import TAG, URL, Differs, expect, must, run

T = f"compat_{TAG}"
conn = None


def connect():
    global conn
    conn = psycopg.connect(URL, autocommit=True, connect_timeout=10)
    expect(conn.execute("SELECT 1").fetchone() == (1,), "SELECT 1")
    conn.execute(f"DROP TABLE IF EXISTS {T}")
    conn.execute(f"CREATE TABLE {T} (id int PRIMARY KEY, v text)")
    return f"server_version {conn.info.server_version}"


def pool():
    with ConnectionPool(URL, min_size=3, max_size=3, open=True, timeout=10) as p:
        out = []

        def work(k):
            with p.connection() as c:
                c.execute("SELECT pg_sleep(0.1)")
                out.append(c.execute("SELECT %s::int * 2", (k,)).fetchone()[0])

        ts = [threading.Thread(target=work, args=(k,)) for k in range(9)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        expect(sorted(out) == [k * 2 for k in range(9)], f"pool results {out}")
    return "9 tasks over a pool of 3"


def prepared():
    for i in range(8):
        r = conn.execute("SELECT %s::int + %s::int", (i, 1), prepare=True).fetchone()[0]
        expect(r == i + 1, f"prepared {r}")
    return "8 executions of a server-side prepared statement"


def simple():
    cur = conn.cursor()
    cur.execute("SELECT 1; SELECT 'two'")  # no parameters: the simple query protocol
    first = cur.fetchone()
    expect(cur.nextset(), "second result")
    expect((first, cur.fetchone()) == ((1,), ("two",)), "results")
    return "two statements in one Query"


def transaction():
    c = psycopg.connect(URL, connect_timeout=10)  # autocommit off: transactions
    try:
        with c.transaction():
            c.execute(f"INSERT INTO {T} VALUES (1, 'a')")
            c.execute("SELECT 1/0")
    except psycopg.errors.DivisionByZero:
        pass
    else:
        raise AssertionError("1/0 did not fail")
    n = c.execute(f"SELECT count(*) FROM {T}").fetchone()[0]
    c.commit()
    c.close()
    expect(n == 0, f"{n} rows after rollback")
    expect(conn.execute("SELECT 2").fetchone() == (2,), "usable")
    return "rolled back, usable"


def notify():
    listener = psycopg.connect(URL, autocommit=True, connect_timeout=10)
    listener.execute(f"LISTEN ch_{TAG}")
    conn.execute(f"NOTIFY ch_{TAG}, 'hello'")
    got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    expect(got == ["hello"], f"got {got}")
    # Its own notification carries the pid it was told (how applications skip their own).
    listener.execute(f"NOTIFY ch_{TAG}, 'own'")
    own = [(n.payload, n.pid) for n in listener.notifies(timeout=5, stop_after=1)]
    told = listener.info.backend_pid
    listener.close()
    expect(own == [("own", told)], f"own notification {own}, told pid {told}")
    return "one notification; its own with its pid"


def cancel():
    c = psycopg.connect(URL, autocommit=True, connect_timeout=10)
    threading.Timer(0.5, c.cancel_safe).start()
    t0 = time.monotonic()
    try:
        c.execute("SELECT pg_sleep(10)")
        raise AssertionError("pg_sleep(10) was not cancelled")
    except psycopg.errors.QueryCanceled:
        pass
    took = time.monotonic() - t0
    expect(took < 5, f"cancelled after {took:.1f}s")
    expect(c.execute("SELECT 3").fetchone() == (3,), "usable after cancel")
    c.close()
    return f"cancelled after {took:.1f}s"


def pid():
    told = conn.info.backend_pid
    server = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    if told != server:
        raise Differs(f"client was told {told}, pg_backend_pid() = {server}")
    return "equal"


def large():
    cur = conn.execute("SELECT g, repeat('x', 20) FROM generate_series(1, 50000) g")
    rows = cur.fetchall()
    expect(len(rows) == 50000 and rows[-1][0] == 50000, f"{len(rows)} rows")
    return "50000 rows"


def copy():
    cur = conn.cursor()
    with cur.copy(f"COPY {T} (id, v) FROM STDIN") as cp:
        for i in range(10, 1010):
            cp.write_row((i, f"v{i}"))
    n = 0
    with cur.copy(f"COPY (SELECT * FROM {T} WHERE id >= 10) TO STDOUT") as cp:
        for _ in cp.rows():
            n += 1
    expect(n == 1000, f"copied out {n}")
    return "1000 rows in and out"


must("connect", connect)
run("pool", pool)
run("prepared", prepared)
run("simple", simple)
run("transaction", transaction)
run("notify", notify)
run("cancel", cancel)
run("pid", pid)
run("large", large)
run("copy", copy)
conn.execute(f"DROP TABLE IF EXISTS {T}")
