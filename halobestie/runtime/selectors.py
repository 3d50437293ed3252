"""Reading the runtime config: cached per process.

The cache is dropped by `invalidate_local()`, which the config-invalidation listener calls when
another instance saves (Valkey pub/sub), and it expires after RUNTIME_CONFIG_CACHE_SECONDS as the
fallback when Valkey is down.
"""

import threading
import time

from django.conf import settings

from halobestie.runtime.models import RuntimeConfig
from halobestie.runtime.schema import RuntimeConfigValues, validate_values

_lock = threading.Lock()
_cached = None  # (expires_at_monotonic, version, values)


def _cache_seconds():
    return settings.RUNTIME_CONFIG_CACHE_SECONDS


def get_config() -> RuntimeConfigValues:
    """The config in force. Never raises for a missing row: defaults apply until seeded."""
    global _cached
    cached = _cached
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[2]
    row = RuntimeConfig.objects.filter(pk=1).only("values", "version").first()
    values = validate_values(row.values) if row else RuntimeConfigValues()
    version = row.version if row else 0
    with _lock:
        _cached = (now + _cache_seconds(), version, values)
    return values


def cached_version():
    cached = _cached
    return cached[1] if cached else None


def invalidate_local():
    global _cached
    with _lock:
        _cached = None
    for callback in _on_invalidate:
        callback()


_on_invalidate = []


def on_invalidate(callback):
    """Call `callback()` (from any thread) whenever this process drops its config: copies made
    from the config (the fast /config body) drop theirs too, so a save is live at once."""
    _on_invalidate.append(callback)
