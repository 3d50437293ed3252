"""Config invalidation between instances over Valkey pub/sub.

`publish_invalidation` is called after a save commits; `start_listener` (started by each server
and scheduler process) drops the local cache when any instance publishes. Without Valkey, or
while it is down, the cache lifetime bounds how stale a config can be.
"""

import logging
import threading
import time

from django.conf import settings

from halobestie.integrations.valkey import get_client, new_client
from halobestie.runtime.selectors import invalidate_local

logger = logging.getLogger(__name__)
CHANNEL = "runtime-config:invalidate"
_listener_started = threading.Event()


def _channel():
    return f"{settings.VALKEY_KEY_PREFIX}{CHANNEL}"


def publish_invalidation(version):
    if not settings.VALKEY_URL:
        return
    try:
        get_client().publish(_channel(), str(version))
    except Exception:
        logger.warning("config invalidation not published; caches expire on their own", exc_info=True)


def start_listener():
    """Start the daemon thread that listens for invalidations (once per process)."""
    if not settings.VALKEY_URL or _listener_started.is_set():
        return
    _listener_started.set()
    threading.Thread(target=_listen_forever, name="runtime-config-listener", daemon=True).start()


def _listen_forever():
    while True:
        try:
            pubsub = new_client(socket_timeout=10).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(_channel())
            # Anything saved while we were not subscribed is picked up by dropping the cache now.
            invalidate_local()
            while True:
                message = pubsub.get_message(timeout=5.0)
                if message and message.get("type") == "message":
                    invalidate_local()
        except Exception:
            logger.warning("config listener lost Valkey; retrying", exc_info=True)
            time.sleep(1)
