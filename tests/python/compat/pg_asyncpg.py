"""asyncpg: the compatibility matrix's PostgreSQL checks."""

import asyncio
import io
import time

import asyncpg

from _checks import TAG, URL, Differs, emit, expect

T = f"compat_{TAG}"


async def check(name, coro_fn):
    t0 = time.monotonic()
    try:
        detail, ok = await asyncio.wait_for(coro_fn(), 30), True
    except Exception as e:  # noqa: BLE001
        detail, ok = f"{type(e).__name__}: {e}", False
    emit(name, ok, f"{detail} ({int((time.monotonic() - t0) * 1000)} ms)")
    return ok


async def main():
    conn = None

    async def connect():
        nonlocal conn
        conn = await asyncpg.connect(URL, timeout=10)
        expect(await conn.fetchval("SELECT 1") == 1, "SELECT 1")
        await conn.execute(f"DROP TABLE IF EXISTS {T}")
        await conn.execute(f"CREATE TABLE {T} (id int PRIMARY KEY, v text)")
        return f"server_version {conn.get_server_version()}"

    async def pool():
        async with asyncpg.create_pool(URL, min_size=3, max_size=3, timeout=10) as p:

            async def work(k):
                async with p.acquire() as c:
                    await c.execute("SELECT pg_sleep(0.1)")
                    return await c.fetchval("SELECT $1::int * 2", k)

            out = await asyncio.gather(*(work(k) for k in range(9)))
        expect(list(out) == [k * 2 for k in range(9)], f"pool results {out}")
        return "9 tasks over a pool of 3"

    async def prepared():
        stmt = await conn.prepare("SELECT $1::int + $2::int")
        for i in range(8):
            expect(await stmt.fetchval(i, 1) == i + 1, "prepared")
        # asyncpg's statement cache: the same text again reuses its named statement.
        for i in range(4):
            expect(await conn.fetchval("SELECT $1::int * 3", i) == i * 3, "cached")
        return "prepare() and the statement cache"

    async def simple():
        await conn.execute("SELECT 1; SELECT 2")  # no arguments: the simple query protocol
        return "two statements in one Query"

    async def transaction():
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {T} VALUES (1, 'a')")
                await conn.execute("SELECT 1/0")
        except asyncpg.DivisionByZeroError:
            pass
        else:
            raise AssertionError("1/0 did not fail")
        n = await conn.fetchval(f"SELECT count(*) FROM {T}")
        expect(n == 0, f"{n} rows after rollback")
        return "rolled back, usable"

    async def notify():
        listener = await asyncpg.connect(URL, timeout=10)
        got = asyncio.Queue()
        # The callback's arguments: connection, pid, channel, payload.
        await listener.add_listener(f"ch_{TAG}", lambda *a: got.put_nowait((a[3], a[1])))
        await conn.execute(f"NOTIFY ch_{TAG}, 'hello'")
        payload, _ = await asyncio.wait_for(got.get(), 5)
        expect(payload == "hello", f"got {payload!r}")
        # Its own notification carries the pid it was told (how applications skip their own).
        await listener.execute(f"NOTIFY ch_{TAG}, 'own'")
        own = await asyncio.wait_for(got.get(), 5)
        told = listener.get_server_pid()
        await listener.close()
        expect(own == ("own", told), f"own notification {own}, told pid {told}")
        return "one notification; its own with its pid"

    async def cancel():
        c = await asyncpg.connect(URL, timeout=10)
        t0 = time.monotonic()
        try:
            # A timeout makes asyncpg send a CancelRequest.
            await c.execute("SELECT pg_sleep(10)", timeout=0.5)
            raise AssertionError("pg_sleep(10) was not cancelled")
        except asyncio.TimeoutError:
            pass
        expect(await c.fetchval("SELECT 3") == 3, "usable after cancel")
        took = time.monotonic() - t0
        expect(took < 5, f"usable after {took:.1f}s")
        await c.close()
        return f"cancelled and usable after {took:.1f}s"

    async def pid():
        told = conn.get_server_pid()
        server = await conn.fetchval("SELECT pg_backend_pid()")
        if told != server:
            raise Differs(f"client was told {told}, pg_backend_pid() = {server}")
        return "equal"

    async def large():
        rows = await conn.fetch("SELECT g, repeat('x', 20) FROM generate_series(1, 50000) g")
        expect(len(rows) == 50000 and rows[-1][0] == 50000, f"{len(rows)} rows")
        return "50000 rows"

    async def copy():
        await conn.copy_records_to_table(T, records=[(i, f"v{i}") for i in range(10, 1010)])
        buf = io.BytesIO()
        await conn.copy_from_query(f"SELECT * FROM {T} WHERE id >= 10", output=buf)
        n = buf.getvalue().count(b"\n")
        expect(n == 1000, f"copied out {n}")
        return "1000 rows in and out"

    if not await check("connect", connect):
        return
    for name, fn in [
        ("pool", pool),
        ("prepared", prepared),
        ("simple", simple),
        ("transaction", transaction),
        ("notify", notify),
        ("cancel", cancel),
        ("pid", pid),
        ("large", large),
        ("copy", copy),
    ]:
        await check(name, fn)
    await conn.execute(f"DROP TABLE IF EXISTS {T}")
    await conn.close()


asyncio.run(main())
