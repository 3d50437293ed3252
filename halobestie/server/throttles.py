"""Per-person request limits for every API endpoint without a dedicated one (the OTP and login
limits live in accounts.services; Xendit's webhooks are authenticated by their token).

One counter per person (the user, or the client IP without a token) and per kind: reads (GET,
HEAD, OPTIONS) and writes, each API_THROTTLE_<KIND>_PER_MINUTE in a fixed one-minute window.
Past it: 429 `rate_limited` in the envelope with Retry-After (the seconds left in the window).
Counters live in Valkey so every process shares them; without VALKEY_URL, or while Valkey does
not answer, each process counts on its own (a looser limit, never an error).
"""

import json
import logging
import threading
import time
from typing import NamedTuple

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from halobestie.integrations import valkey

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60

_local_lock = threading.Lock()
_local_counts = {}


def _count_locally(name, window_index):
    with _local_lock:
        if len(_local_counts) > 10_000:
            for stale in [k for k in _local_counts if k[1] < window_index]:
                del _local_counts[stale]
        count = _local_counts.get((name, window_index), 0) + 1
        _local_counts[(name, window_index)] = count
    return count


def hit(name, *, window_index) -> int:
    """Count one request under `name` in this window; the count so far."""
    if valkey.is_enabled():
        key = valkey.key(f"throttle:{name}:{window_index}")
        try:
            pipe = valkey.get_client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5)
            count, _ = pipe.execute()
            return int(count)
        except Exception as exc:  # Valkey down: count in this process
            logger.warning(
                "throttle counter unavailable: counting per process", extra={"error": type(exc).__name__}
            )
    return _count_locally(name, window_index)


class PersonRateThrottle(BaseThrottle):
    """DEFAULT_THROTTLE_CLASSES: reads and writes per person per minute."""

    def allow_request(self, request, view):
        is_write = request.method not in SAFE_METHODS
        limit = (
            settings.API_THROTTLE_WRITES_PER_MINUTE if is_write else settings.API_THROTTLE_READS_PER_MINUTE
        )
        if limit <= 0:
            return True
        user = getattr(request, "user", None)
        person = (
            f"user:{user.pk}"
            if user is not None and getattr(user, "pk", None)
            else f"ip:{self.get_ident(request)}"
        )
        now = time.time()
        window_index = int(now // WINDOW_SECONDS)
        count = hit(f"{'write' if is_write else 'read'}:{person}", window_index=window_index)
        self.retry_after = max(1, int((window_index + 1) * WINDOW_SECONDS - now) + 1)
        return count <= limit

    def get_ident(self, request):
        # REMOTE_ADDR only: uvicorn has already put a trusted proxy's X-Forwarded-For there
        # (FORWARDED_ALLOW_IPS); DRF's own get_ident would believe a client's header.
        return request.META.get("REMOTE_ADDR") or "unknown"

    def wait(self):
        return getattr(self, "retry_after", WINDOW_SECONDS)


# The fast routes (halobestie/server/fastpath.py): the same read limit without Django -------------

_async_retry_at = 0.0  # monotonic time before which the asyncio path does not try Valkey again


async def ahit(name, *, window_index) -> int:
    """`hit` for the event loop: one pipelined INCR + EXPIRE on the loop's asyncio client. While
    Valkey does not answer, counts in this process (and does not try Valkey again for a second, so
    a dead Valkey costs the fast routes nothing)."""
    global _async_retry_at
    if valkey.is_enabled() and time.monotonic() >= _async_retry_at:
        key = valkey.key(f"throttle:{name}:{window_index}")
        try:
            pipe = valkey.get_async_client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
            return int(count)
        except Exception as exc:
            _async_retry_at = time.monotonic() + 1.0
            logger.warning(
                "throttle counter unavailable: counting per process", extra={"error": type(exc).__name__}
            )
    return _count_locally(name, window_index)


async def person_read_allowed(user) -> bool:
    """PersonRateThrottle's verdict on a read by `user` (authenticated), on the event loop: the
    same counter (`read:user:<id>`), window and limit."""
    limit = settings.API_THROTTLE_READS_PER_MINUTE
    if limit <= 0:
        return True
    window_index = int(time.time() // WINDOW_SECONDS)
    return await ahit(f"read:user:{user.pk}", window_index=window_index) <= limit


class Limited(NamedTuple):
    retry_after: int
    body: bytes


async def read_limited(scope):
    """For a fast route's request (no token: the person is the client address, as
    PersonRateThrottle counts an anonymous read): None when allowed, else the 429 to send."""
    limit = settings.API_THROTTLE_READS_PER_MINUTE
    if limit <= 0:
        return None
    client = scope.get("client")
    person = f"ip:{(client[0] if client else None) or 'unknown'}"
    now = time.time()
    window_index = int(now // WINDOW_SECONDS)
    count = await ahit(f"read:{person}", window_index=window_index)
    if count <= limit:
        return None
    from halobestie.errors import TooManyRequests, envelope

    exc = TooManyRequests(retry_after=1)
    body = json.dumps(envelope(exc.code, exc.detail), ensure_ascii=False).encode()
    return Limited(retry_after=max(1, int((window_index + 1) * WINDOW_SECONDS - now) + 1), body=body)
