"""Valkey (Redis protocol) clients. Valkey is a cache and a bus, never the source of truth:
callers catch errors and fall back to Postgres (see mitras/mirror.py).

Timeouts are short so that a dead Valkey costs a request milliseconds, not seconds.
"""

import threading

import redis
from django.conf import settings

_lock = threading.Lock()
_client = None


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


def key(name):
    """A key name with the deployment's prefix (empty in production; tests isolate with it)."""
    return f"{settings.VALKEY_KEY_PREFIX}{name}"


def reset_client():
    """Drop the process-wide client (its pool is closed), so the next `get_client()` builds a new
    one from the current settings. For tests that point VALKEY_URL elsewhere."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()
