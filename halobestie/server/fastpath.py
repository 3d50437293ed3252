"""Fast routes: a few public GETs answered before Django (issue 22).

The beacon (`GET /api/v1/availability`) is polled by every open client app, and `GET /api/v1/config`
by every app start. Their answers are the same for everyone for a second at a time, so they are
served by this ASGI wrapper from an in-process copy of the body (`CachedBody`), without Django's
request machinery and without a thread hop (`register`). A session's state and its messages
(`register_pattern`, sessions_app/fast_reads.py) need the caller's identity: they verify the
token in memory and read what the views' rules need in one statement on the event loop's async
database pool (halobestie/db/async_reads.py), also without a thread hop, and answer only
success. What Django would add is kept for every fast route:

- the request id (X-Request-ID taken when sane, else made up; echoed; in the log line),
- one `halobestie.request` log line and the request counter + duration histogram, with the same
  labels as the middleware (`halobestie/server/middleware.py`),
- the per-person read limit (`halobestie/server/throttles.py`, one Valkey INCR when a limit is set),
- the security headers Django's middleware sets on every answer.

Only exact matches are served here: GET or HEAD on the public listener; the exact routes without
a query string; the pattern routes validate theirs strictly. Anything else (POST, an odd query
string, a NUL in the path, an Origin, an Accept asking for indented JSON or not for JSON…) goes
to Django unchanged, so its validation and 4xx answers stay the
only ones. A handler can also decline (return None): no token, a refusal of any kind, or no body
at all (Valkey and Postgres both down past the stale limit). Django answers then, with its own
status and error envelope. `FAST_ROUTES_ENABLED=false` sends everything to Django.

`CachedBody` keeps one body per route: fresh for `ttl` seconds, then rebuilt by the route's
synchronous builder on a dedicated thread (one refresh at a time; callers meanwhile get the
previous body). When the builder fails (Postgres down while Valkey is down too) the previous body is
served for up to `stale_seconds`, and the builder is tried again once per `ttl`.
"""

import asyncio
import collections
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from halobestie.server import metrics, throttles
from halobestie.server.listeners import PUBLIC, SCOPE_KEY
from halobestie.server.request_context import reset_request_id, set_request_id

logger = logging.getLogger("halobestie.request")
refresh_logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_routes = {}  # path -> (route pattern label, async handler)
_pattern_routes = []  # (compiled regex, route pattern label, async handler(scope, match))

# One thread for every route's refresh: refreshes are rare (one per ttl per route) and each
# needs a database connection of its own (Django's are per thread).
_refresh_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpath-refresh")


def register(path, *, route, handler):
    """Serve GET/HEAD `path` (exactly, without a query string) with `handler()`: an async callable
    returning the body (bytes) or None to let Django answer. `route` is the URL pattern label the
    request is logged and counted under (the one Django's resolver would give)."""
    _routes[path] = (route, handler)


def register_pattern(regex, *, route, handler):
    """Serve GET/HEAD of paths fully matching `regex` (a query string allowed: the handler
    validates it, or declines) with `await handler(scope, match)`: the body (bytes) or None to let
    Django answer. For reads that need the caller's identity: the handler authenticates and
    authorises exactly as the Django view would, and declines on anything but success, so every
    error answer (401, 403, 404, 400, 429) stays Django's."""
    _pattern_routes.append((re.compile(regex), route, handler))


def registered_paths():
    return set(_routes)


def _match(scope):
    entry = _routes.get(scope["path"]) if not scope.get("query_string") else None
    if entry is not None:
        route, handler = entry
        return route, handler, True
    for regex, route, handler in _pattern_routes:
        match = regex.fullmatch(scope["path"])
        if match is not None:
            return route, _bound(handler, scope, match), False
    return None


def _bound(handler, scope, match):
    async def call():
        return await handler(scope, match)

    return call


def _run_with_fresh_connections(build):
    from django.db import close_old_connections

    close_old_connections()
    try:
        return build()
    finally:
        close_old_connections()


class CachedBody:
    """An in-process copy of a body, rebuilt by `build()` (sync) at most once per `ttl` seconds."""

    def __init__(self, name, build, *, ttl, stale_seconds):
        self.name = name
        self.build = build
        self.ttl = ttl
        self.stale_seconds = stale_seconds
        self.body = None
        self.built_at = 0.0  # monotonic time of the body's build
        self.fresh_until = 0.0  # monotonic time after which a refresh is due
        self.refreshes = 0
        self._inflight = None  # (loop, task)

    def clear(self):
        self.body, self.built_at, self.fresh_until = None, 0.0, 0.0

    async def get(self):
        """The body (bytes), refreshed when due, or None when there is none within the stale
        limit."""
        now = time.monotonic()
        if self.body is not None and now < self.fresh_until:
            return self.body
        task = self._refresh_task()
        if self.body is not None and now - self.built_at < self.stale_seconds:
            return self.body  # the refresh runs meanwhile; this caller does not wait
        await asyncio.shield(task)  # never raises: a failed refresh is logged and leaves no body
        if self.body is not None and time.monotonic() - self.built_at < self.stale_seconds:
            return self.body
        return None

    def _refresh_task(self):
        loop = asyncio.get_running_loop()
        inflight = self._inflight
        if inflight is not None and inflight[0] is loop and not inflight[1].done():
            return inflight[1]
        task = loop.create_task(self._refresh(), name=f"fastpath-refresh-{self.name}")
        self._inflight = (loop, task)
        return task

    async def _refresh(self):
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(_refresh_executor, _run_with_fresh_connections, self.build)
        except Exception as exc:
            # Try again in a ttl, not on every request meanwhile.
            self.fresh_until = time.monotonic() + self.ttl
            refresh_logger.warning(
                "fast route refresh failed", extra={"route": self.name, "error": type(exc).__name__}
            )
            return
        if isinstance(body, str):
            body = body.encode()
        now = time.monotonic()
        self.body, self.built_at, self.fresh_until = body, now, now + self.ttl
        self.refreshes += 1


served = collections.Counter()  # route -> requests answered here (not by Django); for tests


# The ASGI wrapper --------------------------------------------------------------------------------


def _static_headers():
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to every answer."""
    headers = [(b"content-type", b"application/json"), (b"vary", b"Accept")]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        policy = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.encode()))
    return headers


def _hsts():
    """Django's SecurityMiddleware's Strict-Transport-Security (on HTTPS requests only)."""
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


def _secure(scope):
    if scope.get("scheme") == "https":
        return True
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if not proxy:
        return False
    name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1").split(",")[0].strip() == proxy[1]
    return False


def _plain_json_wanted(headers):
    """False for a request whose answer Django would shape differently: a browser's (an Origin:
    the API docs' "Try it out", Django adds the CORS headers it needs), or an Accept that asks for
    indented JSON or names neither JSON nor */* (DRF's negotiation: indented, or 406)."""
    for key, value in headers:
        if key == b"origin":
            return False
        if key == b"accept":
            value = value.lower()
            if b"indent" in value or (b"json" not in value and b"*/*" not in value):
                return False
    return True


class FastRoutes:
    """Wraps the public listener's HTTP application (Django): registered routes answered here."""

    def __init__(self, app):
        self.app = app
        self._headers = None

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and settings.FAST_ROUTES_ENABLED
            and scope["method"] in ("GET", "HEAD")
            and scope.get(SCOPE_KEY, PUBLIC) == PUBLIC
            and _plain_json_wanted(scope.get("headers") or ())
        ):
            entry = _match(scope)
            served_here = entry is not None and (not settings.SECURE_SSL_REDIRECT or _secure(scope))
            if served_here and await self._serve(entry, scope, send):
                return None
        return await self.app(scope, receive, send)

    async def _serve(self, entry, scope, send):
        route, handler, anonymous = entry
        started = time.monotonic()
        request_id = None
        for key, value in scope.get("headers") or ():
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not request_id or not _SAFE_ID.match(request_id):
            request_id = uuid.uuid4().hex
        token = set_request_id(request_id)
        try:
            # The anonymous read limit; an authenticated route counts the person in its handler.
            limited = await throttles.read_limited(scope) if anonymous else None
            if limited is not None:
                status, body = 429, limited.body
                extra = [(b"retry-after", str(limited.retry_after).encode())]
            else:
                try:
                    body = await handler()
                except Exception:
                    refresh_logger.exception("fast route failed: Django answers", extra={"route": route})
                    body = None
                if body is None:
                    return False  # Django answers (and logs, counts) this request
                status, extra = 200, []
            if self._headers is None:
                self._headers = _static_headers()
            if settings.SECURE_HSTS_SECONDS and _secure(scope):
                extra = [*extra, (b"strict-transport-security", _hsts().encode())]
            headers = [
                *self._headers,
                *extra,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            seconds = time.monotonic() - started
            served[route] += 1
            metrics.fast_request_observed(
                listener=PUBLIC, method=scope["method"], route=route, status=status, seconds=seconds
            )
            logger.info(
                "request",
                extra={
                    "listener": PUBLIC,
                    "method": scope["method"],
                    "route": "/" + route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            return True
        finally:
            reset_request_id(token)
