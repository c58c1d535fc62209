"""PyMySQL: the compatibility matrix's MySQL checks (PyMySQL has no server-side prepared
statements: `prepared` is its client-side parameter binding)."""

import os
import tempfile
import threading
import time

import pymysql

from _checks import LARGE_SQL, TAG, Differs, expect, must, mysql_parts, run

T = f"compat_{TAG}"
P = mysql_parts()
conn = None


def connect(**kw):
    return pymysql.connect(**P, connect_timeout=10, autocommit=True, **kw)


def q(c, sql, args=None):
    with c.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def c_connect():
    global conn
    conn = connect(local_infile=True)
    expect(q(conn, "SELECT 1") == ((1,),), "SELECT 1")
    q(conn, f"DROP TABLE IF EXISTS {T}")
    q(conn, f"CREATE TABLE {T} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
    return f"server {conn.get_server_info()}"


def pool():
    conns = [connect() for _ in range(3)]
    out = []

    def work(c, ks):
        for k in ks:
            q(c, "DO SLEEP(0.1)")
            out.append(q(c, "SELECT %s * 2", (k,))[0][0])

    ts = [threading.Thread(target=work, args=(c, range(i, 9, 3))) for i, c in enumerate(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    for c in conns:
        c.close()
    expect(sorted(out) == [k * 2 for k in range(9)], f"results {out}")
    return "9 tasks over 3 connections"


def prepared():
    for i in range(8):
        expect(q(conn, "SELECT %s + %s", (i, 1))[0][0] == i + 1, "bound")
    return "client-side parameter binding (no server-side statements in PyMySQL)"


def simple():
    expect(q(conn, "SELECT 'plain'") == (("plain",),), "plain")
    return "COM_QUERY"


def transaction():
    c = connect()
    c.begin()
    q(c, f"INSERT INTO {T} VALUES (1, 'a')")
    try:
        q(c, f"INSERT INTO {T} VALUES (1, 'dup')")
        raise AssertionError("duplicate key did not fail")
    except pymysql.err.IntegrityError as e:
        expect(e.args[0] == 1062, f"error {e.args}")
    c.rollback()
    n = q(c, f"SELECT COUNT(*) FROM {T}")[0][0]
    c.close()
    expect(n == 0, f"{n} rows after rollback")
    return "rolled back, usable"


def cancel():
    c = connect()
    tid = c.thread_id()
    killer = connect()
    threading.Timer(0.5, lambda: q(killer, f"KILL QUERY {tid}")).start()
    t0 = time.monotonic()
    try:
        r = q(c, "SELECT SLEEP(10)")
        expect(r == ((1,),), f"SLEEP returned {r}")  # MySQL: an interrupted SLEEP returns 1
    except pymysql.err.OperationalError as e:
        expect(e.args[0] == 1317, f"error {e.args}")  # MariaDB: query execution was interrupted
    took = time.monotonic() - t0
    expect(took < 5, f"interrupted after {took:.1f}s")
    expect(q(c, "SELECT 3") == ((3,),), "usable after KILL QUERY")
    c.close()
    killer.close()
    return f"KILL QUERY after {took:.1f}s"


def thread_id():
    told = conn.thread_id()
    server = q(conn, "SELECT CONNECTION_ID()")[0][0]
    if told != server:
        raise Differs(f"handshake said {told}, CONNECTION_ID() = {server}")
    return "equal"


def large():
    rows = q(conn, LARGE_SQL)
    expect(len(rows) == 50000, f"{len(rows)} rows")
    return "50000 rows"


def load_data():
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        f.write("".join(f"{i}\tv{i}\n" for i in range(10, 1010)))
    try:
        q(conn, f"LOAD DATA LOCAL INFILE %s INTO TABLE {T} (id, v)", (f.name,))
    finally:
        os.unlink(f.name)
    n = q(conn, f"SELECT COUNT(*) FROM {T} WHERE id >= 10")[0][0]
    expect(n == 1000, f"{n} rows loaded")
    return "1000 rows"


must("connect", c_connect)
run("pool", pool)
run("prepared", prepared)
run("simple", simple)
run("transaction", transaction)
run("cancel", cancel)
run("thread_id", thread_id)
run("large", large)
run("load_data", load_data)
q(conn, f"DROP TABLE IF EXISTS {T}")
