"""Reads on the event loop (issue 22): an async psycopg pool per event loop for the few hot
statements answered before Django (sessions_app/fast_reads.py), without a thread hop.

Its connections are set up as Django's own: the same server options (lock and statement
timeouts), the session time zone Django uses, JSON loaded as text (Django's field converters parse
it), so a row holds the values `Model.from_db` expects. Timestamps are loaded by psycopg's own
(compiled) loader, aware: the same instants as Django's. Parameters are sent apart from the SQL,
and a statement run a few times is prepared (parsed and planned once per connection), as in the
chat store's pool (sessions_app/chat_store.py; that one keeps psycopg's JSON loader, hence a pool
of its own).

When a read fails for the database's sake (PostgreSQL down, no connection within
POOL_TIMEOUT, a connection that broke) `fetch` raises ReadUnavailable and this process skips the
pool for RETRY_SECONDS: the caller lets Django answer (its 503 `database_unavailable` when
PostgreSQL really is down), so an outage costs a read nothing more than Django's own answer.
"""

import asyncio
import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import Error as PsycopgError
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import make_conninfo
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

logger = logging.getLogger(__name__)

POOL_TIMEOUT = 1.0  # seconds a read waits for a connection before Django answers instead
RETRY_SECONDS = 1.0  # after a failure, reads go to Django this long before the pool is tried again


class ReadUnavailable(Exception):
    """The database did not answer this read (the caller declines: Django answers)."""


_pools = {}  # event loop -> AsyncConnectionPool
statements_run = 0  # statements run by this process (for tests)
_pools_lock = threading.Lock()
_retry_at = 0.0


def _connect_kwargs():
    """Django's connection parameters for the default database, for an async connection."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)  # Django's client-side binding cursor: ours binds on the server
    params.pop("prepare_threshold", None)  # psycopg's default: prepared after a few runs
    params.pop("context", None)  # Django's loaders: its timestamp loader is pure Python (slow)
    context = AdaptersMap(psycopg.adapters)
    context.register_loader("jsonb", TextLoader)  # as Django: JSONField's converter parses it
    if connection.timezone_name:
        params["options"] = f"{params.get('options', '')} -c TimeZone={connection.timezone_name}".strip()
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items() if v not in (None, "")})
    return conninfo, {"autocommit": True, "context": context}


def _pool():
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(loop)
            if pool is None:
                conninfo, kwargs = _connect_kwargs()
                pool = AsyncConnectionPool(
                    conninfo=conninfo,
                    kwargs=kwargs,
                    min_size=1,
                    max_size=settings.FAST_READ_CONNECTIONS,
                    timeout=POOL_TIMEOUT,
                    open=False,
                    name="fast-reads",
                )
                _pools[loop] = pool
    return pool


async def fetch(statements):
    """Run `statements` ([(sql, params)]) on one connection of this loop's pool, in order; the
    rows of each ([[tuple]]). Raises ReadUnavailable (see the module docstring)."""
    global _retry_at, statements_run
    if time.monotonic() < _retry_at:
        raise ReadUnavailable()
    pool = _pool()
    try:
        if pool.closed:
            await pool.open(wait=False)
        async with pool.connection() as conn:
            results = []
            for sql, params in statements:
                cursor = await conn.execute(sql, params)
                results.append(await cursor.fetchall())
            statements_run += len(statements)
            return results
    except (PoolTimeout, PsycopgError, OSError) as exc:
        if time.monotonic() >= _retry_at:
            logger.warning(
                "fast read unavailable: Django answers for a while", extra={"error": type(exc).__name__}
            )
        _retry_at = time.monotonic() + RETRY_SECONDS
        raise ReadUnavailable() from exc


def is_available():
    """False while reads skip the pool after a failure."""
    return time.monotonic() >= _retry_at


async def close_pools():
    """Close the pool of the running loop (server shutdown, tests)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None and not pool.closed:
        await pool.close()
