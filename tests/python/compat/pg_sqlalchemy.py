"""SQLAlchemy 2 (Core, on psycopg 3, its own QueuePool): the compatibility matrix's
PostgreSQL checks. Notifications, cancel and COPY are the driver's (see pg_psycopg.py)."""

import threading

import sqlalchemy as sa

from _checks import TAG, URL, Differs, expect, must, run

T = f"compat_{TAG}"
engine = sa.create_engine(
    URL.replace("postgres://", "postgresql+psycopg://", 1),
    pool_size=3,
    max_overflow=0,
    pool_pre_ping=True,
    pool_timeout=10,
)
meta = sa.MetaData()
table = sa.Table(T, meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))


def connect():
    with engine.connect() as c:
        expect(c.execute(sa.text("SELECT 1")).scalar() == 1, "SELECT 1")
    meta.drop_all(engine)
    meta.create_all(engine)
    return f"dialect {engine.dialect.name}+{engine.dialect.driver}"


def pool():
    out = []

    def work(k):
        with engine.connect() as c:
            c.execute(sa.text("SELECT pg_sleep(0.1)"))
            out.append(c.execute(sa.text("SELECT CAST(:k AS int) * 2"), {"k": k}).scalar())

    ts = [threading.Thread(target=work, args=(k,)) for k in range(9)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    expect(sorted(out) == [k * 2 for k in range(9)], f"pool results {out}")
    return "9 tasks over a QueuePool of 3"


def prepared():
    with engine.begin() as c:
        c.execute(table.insert(), [{"id": i, "v": f"v{i}"} for i in range(100, 110)])
        got = c.execute(sa.select(table.c.v).where(table.c.id == sa.bindparam("i")), {"i": 105}).scalar()
        expect(got == "v105", f"select {got}")
        c.execute(table.delete().where(table.c.id >= 100))
    return "Core insert (executemany), select with a bound parameter, delete"


def simple():
    with engine.connect() as c:
        expect(c.exec_driver_sql("SELECT 'plain'").scalar() == "plain", "plain")
    return "exec_driver_sql without parameters"


def transaction():
    try:
        with engine.begin() as c:
            c.execute(table.insert(), {"id": 1, "v": "a"})
            c.execute(sa.text("SELECT 1/0"))
    except sa.exc.DataError:
        pass
    else:
        raise AssertionError("1/0 did not fail")
    with engine.connect() as c:
        n = c.execute(sa.select(sa.func.count()).select_from(table)).scalar()
    expect(n == 0, f"{n} rows after rollback")
    return "rolled back, the pool's connection usable"


def pid():
    with engine.connect() as c:
        told = c.connection.driver_connection.info.backend_pid
        server = c.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    if told != server:
        raise Differs(f"client was told {told}, pg_backend_pid() = {server}")
    return "equal"


def large():
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT g, repeat('x', 20) FROM generate_series(1, 50000) g")).all()
    expect(len(rows) == 50000, f"{len(rows)} rows")
    return "50000 rows"


must("connect", connect)
run("pool", pool)
run("prepared", prepared)
run("simple", simple)
run("transaction", transaction)
run("pid", pid)
run("large", large)
meta.drop_all(engine)
engine.dispose()
