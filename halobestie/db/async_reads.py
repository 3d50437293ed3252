"""Reads on the event loop (issue 22): an async psycopg pool per event loop
(halobestie/db/loop_pools.py) for the few hot statements answered before Django
(sessions_app/fast_reads.py), without a thread hop.

Its connections are set up as Django's own: the same server options (lock and statement
timeouts), JSON loaded as text (Django's field converters parse it), so a row holds the values
`Model.from_db` expects. Timestamps are loaded by psycopg's own (compiled) loader, aware: the same
instants as Django's. One difference: the session's time zone is the one times are shown in
(TIME_ZONE when the pool opens; `pool_zone`), not UTC: PostgreSQL writes a time with its offset in
one `to_char` (sessions_app/fast_bodies.py); a loaded time is then aware in that zone (the same
instant; convert it before printing its offset). Parameters are sent apart from the SQL,
and a statement run a few times is prepared (parsed and planned once per connection), as in the
chat store's pool (sessions_app/chat_store.py; that one keeps psycopg's JSON loader, hence a pool
of its own).

When a read fails for the database's sake (PostgreSQL down, no connection within
POOL_TIMEOUT, a connection that broke) `fetch` raises ReadUnavailable and this process skips the
pool for RETRY_SECONDS: the caller lets Django answer (its 503 `database_unavailable` when
PostgreSQL really is down), so an outage costs a read nothing more than Django's own answer.
"""

import logging
import time

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import Error as PsycopgError
from psycopg.adapt import AdaptersMap, Loader
from psycopg.conninfo import make_conninfo
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from halobestie.db.loop_pools import LoopPools

logger = logging.getLogger(__name__)

POOL_TIMEOUT = 1.0  # seconds a read waits for a connection before Django answers instead
RETRY_SECONDS = 1.0  # after a failure, reads go to Django this long before the pool is tried again


class ReadUnavailable(Exception):
    """The database did not answer this read (the caller declines: Django answers)."""


class _BytesLoader(Loader):
    """A value as the bytes PostgreSQL sent (its text form)."""

    def load(self, data):
        return bytes(data)


statements_run = 0  # statements run by this process (for tests)
_retry_at = 0.0


def _connect_kwargs(zone):
    """Django's connection parameters for the default database, for an async connection whose
    session shows times in `zone` (None: without USE_TZ, the server's)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)  # Django's client-side binding cursor: ours binds on the server
    params.pop("prepare_threshold", None)  # psycopg's default: prepared after a few runs
    params.pop("context", None)  # Django's loaders: its timestamp loader is pure Python (slow)
    context = AdaptersMap(psycopg.adapters)
    context.register_loader("jsonb", TextLoader)  # as Django: JSONField's converter parses it
    context.register_loader("json", _BytesLoader)  # a rendered body, passed through
    # a rendered body written as text (no model column is bpchar: sessions_app/fast_bodies.py)
    context.register_loader("bpchar", _BytesLoader)
    options = f"{params.get('options', '')} -c DateStyle=ISO"
    if zone:
        options += f" -c TimeZone={zone}"
    params["options"] = options.strip()
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items() if v not in (None, "")})
    return conninfo, {"autocommit": True, "context": context}


def _make_pool():
    zone = settings.TIME_ZONE if settings.USE_TZ else None
    conninfo, kwargs = _connect_kwargs(zone)
    pool = AsyncConnectionPool(
        conninfo=conninfo,
        kwargs=kwargs,
        min_size=1,
        max_size=settings.FAST_READ_CONNECTIONS,
        timeout=POOL_TIMEOUT,
        open=False,
        name="fast-reads",
    )
    pool.zone = zone
    return pool


_pools = LoopPools(_make_pool)


def pool_zone():
    """The time zone the sessions of this event loop's pool show times in (None without USE_TZ)."""
    return _pools.current().zone


async def fetch(statements):
    """Run `statements` ([(sql, params)]) on one connection of this loop's pool, in order; the
    rows of each ([[tuple]]). Raises ReadUnavailable (see the module docstring)."""
    global _retry_at, statements_run
    if time.monotonic() < _retry_at:
        raise ReadUnavailable()
    try:
        pool = await _pools.get()
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
    await _pools.close()
