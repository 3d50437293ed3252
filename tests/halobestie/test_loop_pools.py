"""One async pool per event loop (halobestie/db/loop_pools.py), on the real PostgreSQL: each loop
gets its own, opened once however many ask at once, and closed with its loop's `close`."""

import asyncio

from halobestie.db import async_reads
from halobestie.db.loop_pools import LoopPools


def test_each_event_loop_gets_its_own_pool_opened_once(db):
    conninfo, kwargs = async_reads._connect_kwargs(None)
    made = []

    def make():
        from psycopg_pool import AsyncConnectionPool

        made.append(AsyncConnectionPool(conninfo=conninfo, kwargs=kwargs, min_size=1, max_size=2, open=False))
        return made[-1]

    pools = LoopPools(make)

    async def use():
        opened = await asyncio.gather(*(pools.get() for _ in range(5)))
        assert all(pool is opened[0] for pool in opened)
        async with opened[0].connection() as conn:
            assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
        await pools.close()
        assert opened[0].closed
        await pools.close()  # nothing left to close
        return opened[0]

    first, second = asyncio.run(use()), asyncio.run(use())
    assert first is not second
    assert made == [first, second]
