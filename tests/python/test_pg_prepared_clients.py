"""Drivers that prepare statements by name, through maitred in transaction mode, several
clients sharing few server connections: psycopg with server-side prepare forced on
(prepare_threshold=0, names _pg3_N per connection, so names collide between clients) and
asyncpg (prepares every query, plus its own type-introspection statements)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import psycopg
import pytest

pytestmark = pytest.mark.timeout(120)


def test_psycopg_forced_server_side_prepare_8_clients_pool_2(start_maitred):
    m = start_maitred("--pool-size", "2")

    def client(k: int) -> None:
        with psycopg.connect(m.url, autocommit=True, prepare_threshold=0, connect_timeout=15) as c:
            for i in range(30):
                # Same text for every client: same maitred statement; different values.
                assert c.execute("SELECT %s::int * 2 + %s::int", (i, k)).fetchone() == (i * 2 + k,)
                # A text unique to this client: each client's _pg3_N means something else.
                row = c.execute(f"SELECT %s::text || '-{k}'", (str(i),)).fetchone()
                assert row == (f"{i}-{k}",)
            with c.transaction():
                assert c.execute("SELECT %s::int", (k,)).fetchone() == (k,)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for f in [pool.submit(client, k) for k in range(8)]:
            f.result()


def test_asyncpg_prepares_everything_12_clients_pool_3(start_maitred):
    m = start_maitred("--pool-size", "3")

    async def client(k: int) -> None:
        conn = await asyncpg.connect(m.url, timeout=30)
        try:
            for i in range(20):
                assert await conn.fetchval("SELECT $1::int + $2::int", i, k) == i + k
                rows = await conn.fetch("SELECT g, g::text FROM generate_series(1, $1::int) g", 3)
                assert [(r[0], r[1]) for r in rows] == [(1, "1"), (2, "2"), (3, "3")]
            stmt = await conn.prepare("SELECT $1::text || $2::text")
            assert await stmt.fetchval("a", str(k)) == f"a{k}"
            async with conn.transaction():
                await conn.execute("SELECT pg_sleep(0.01)")
                assert await conn.fetchval("SELECT $1::int", k) == k
            # An error inside a prepared statement leaves the session usable.
            with pytest.raises(asyncpg.DivisionByZeroError):
                await conn.fetchval("SELECT 1 / $1::int", 0)
            assert await conn.fetchval("SELECT 1 / $1::int", 1) == 1
        finally:
            await conn.close()

    async def main() -> None:
        await asyncio.gather(*(client(k) for k in range(12)))

    asyncio.run(main())
