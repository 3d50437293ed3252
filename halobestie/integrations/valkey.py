"""Valkey (Redis protocol) clients. Valkey is a cache and a bus, never the source of truth:
callers catch errors and fall back to Postgres (see mitras/mirror.py).

Timeouts are short so that a dead Valkey costs a request milliseconds, not seconds.
"""

import threading
import weakref

import redis
from django.conf import settings
from redis import asyncio as aioredis

_lock = threading.Lock()
_client = None
_async_clients = weakref.WeakKeyDictionary()  # event loop -> asyncio client (one per loop)


def is_enabled():
    return bool(settings.VALKEY_URL)


def new_client(*, socket_timeout=1.0):
    return redis.Redis.from_url(
        settings.VALKEY_URL,
        socket_connect_timeout=0.5,
        socket_timeout=socket_timeout,
        health_check_interval=10,
        decode_responses=True,
    )


def get_client():
    """The process-wide client (thread-safe connection pool). Precondition: VALKEY_URL is set."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = new_client()
    return _client


def get_async_client():
    """The asyncio client of the running event loop (a client is bound to its loop). Same
    timeouts as `new_client`. Precondition: VALKEY_URL is set."""
    import asyncio

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.VALKEY_URL,
            socket_connect_timeout=0.5,
            socket_timeout=1.0,
            health_check_interval=10,
            decode_responses=True,
        )
        _async_clients[loop] = client
    return client


def key(name):
    """A key name with the deployment's prefix (empty in production; tests isolate with it)."""
    return f"{settings.VALKEY_KEY_PREFIX}{name}"


def reset_client():
    """Drop the process-wide client (its pool is closed), so the next `get_client()` builds a new
    one from the current settings. For tests that point VALKEY_URL elsewhere."""
    global _client
    with _lock:
        client, _client = _client, None
        _async_clients.clear()
    if client is not None:
        client.close()
