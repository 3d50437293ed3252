"""One async psycopg pool per event loop, for the statements run on the event loop itself (no
thread hop): an AsyncConnectionPool belongs to the loop it was opened on, so a process with one
server loop has one pool of each kind, and a test that runs a fresh loop gets a fresh pool.

`LoopPools(make)` keeps them: `make()` builds the pool of the running loop on first use (not yet
open), `await pools.get()` opens it once (an asyncio lock per loop, so one opening at a time) and
returns it, `await pools.close()` closes the running loop's. Used by the fast reads
(halobestie/db/async_reads.py) and the chat store (sessions_app/chat_store.py), each with its own
connection options.
"""

import asyncio
import threading


class LoopPools:
    """Pools of one kind, one per event loop, made by `make()` (an unopened pool)."""

    def __init__(self, make):
        self._make = make
        self._entries = {}  # event loop -> (pool, asyncio.Lock)
        self._lock = threading.Lock()

    def _entry(self):
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            with self._lock:
                entry = self._entries.get(loop)
                if entry is None:
                    entry = (self._make(), asyncio.Lock())
                    self._entries[loop] = entry
        return entry

    def current(self):
        """The running loop's pool, made if it was not (open or not)."""
        return self._entry()[0]

    async def get(self):
        """The running loop's pool, open (connections are made in the background)."""
        pool, lock = self._entry()
        if pool.closed:
            async with lock:
                if pool.closed:
                    await pool.open(wait=False)
        return pool

    async def close(self):
        """Close the running loop's pool, if it has one (server shutdown, tests)."""
        entry = self._entries.pop(asyncio.get_running_loop(), None)
        if entry is not None and not entry[0].closed:
            await entry[0].close()
