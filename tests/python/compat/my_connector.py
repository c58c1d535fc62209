"""mysql-connector-python: the compatibility matrix's MySQL checks (server-side prepared
statements with cursor(prepared=True))."""

import os
import tempfile
import threading
import time

import mysql.connector
from mysql.connector import errorcode
from mysql.connector.pooling import MySQLConnectionPool

from _checks import LARGE_SQL, TAG, Differs, expect, must, mysql_parts, run

T = f"compat_{TAG}"
P = mysql_parts()
OPTS = dict(P, connection_timeout=10, autocommit=True, ssl_disabled=True, auth_plugin="mysql_native_password")
conn = None


def connect(**kw):
    return mysql.connector.connect(**OPTS, **kw)


def q(c, sql, args=None):
    cur = c.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall() if cur.with_rows else []
    cur.close()
    return rows


def c_connect():
    global conn
    conn = connect(allow_local_infile=True)
    expect(q(conn, "SELECT 1") == [(1,)], "SELECT 1")
    q(conn, f"DROP TABLE IF EXISTS {T}")
    q(conn, f"CREATE TABLE {T} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
    return f"server {conn.server_info}"


def pool():
    p = MySQLConnectionPool(pool_name=f"p{os.getpid()}", pool_size=3, **OPTS)
    out = []

    def work(ks):
        for k in ks:
            c = p.get_connection()
            try:
                q(c, "DO SLEEP(0.1)")
                out.append(q(c, "SELECT %s * 2", (k,))[0][0])
            finally:
                c.close()

    ts = [threading.Thread(target=work, args=(range(i, 9, 3),)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    expect(sorted(out) == [k * 2 for k in range(9)], f"results {out}")
    return "9 tasks over a MySQLConnectionPool of 3"


def prepared():
    cur = conn.cursor(prepared=True)
    for i in range(8):
        cur.execute("SELECT ? + ?", (i, 1))
        expect(cur.fetchone()[0] == i + 1, "prepared")
    cur.close()
    return "8 executions of a server-side prepared statement"


def simple():
    expect(q(conn, "SELECT 'plain'") == [("plain",)], "plain")
    return "COM_QUERY"


def transaction():
    c = connect()
    c.start_transaction()
    q(c, f"INSERT INTO {T} VALUES (1, 'a')")
    try:
        q(c, f"INSERT INTO {T} VALUES (1, 'dup')")
        raise AssertionError("duplicate key did not fail")
    except mysql.connector.IntegrityError as e:
        expect(e.errno == errorcode.ER_DUP_ENTRY, f"error {e}")
    c.rollback()
    n = q(c, f"SELECT COUNT(*) FROM {T}")[0][0]
    c.close()
    expect(n == 0, f"{n} rows after rollback")
    return "rolled back, usable"


def cancel():
    c = connect()
    tid = c.connection_id
    killer = connect()
    threading.Timer(0.5, lambda: killer.cmd_query(f"KILL QUERY {tid}")).start()
    t0 = time.monotonic()
    try:
        r = q(c, "SELECT SLEEP(10)")
        expect(r == [(1,)], f"SLEEP returned {r}")
    except mysql.connector.Error as e:
        expect(e.errno == 1317, f"error {e}")
    took = time.monotonic() - t0
    expect(took < 5, f"interrupted after {took:.1f}s")
    expect(q(c, "SELECT 3") == [(3,)], "usable after KILL QUERY")
    c.close()
    killer.close()
    return f"KILL QUERY after {took:.1f}s"


def thread_id():
    told = conn.connection_id
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
        q(conn, f"LOAD DATA LOCAL INFILE '{f.name}' INTO TABLE {T} (id, v)")
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
