"""Request id, one log line, the request counter and the duration histogram (by route pattern)
per request; the same for WebSockets.

The request id is taken from X-Request-ID when the proxy sets a sane one, else made up. The log
line carries the route pattern the request matched (`api/v1/devices/<str:token>`), never the raw
path (an FCM token, a payment's external id or a session id could be in it), the query string,
a header or a body.

Every middleware here is sync- and async-capable (server/async_capable.py): under ASGI the chain
runs on the event loop, and Django adapts none of ours with a thread hop.
"""

import logging
import re
import time
import uuid

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers

from halobestie.errors import envelope
from halobestie.server import metrics
from halobestie.server.async_capable import AsyncCapableMiddleware
from halobestie.server.listeners import PUBLIC, request_listener
from halobestie.server.request_context import reset_request_id, set_request_id
from halobestie.server.safe_input import text_is_storable

logger = logging.getLogger("halobestie.request")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Probes and scrapes come every few seconds: logged at DEBUG only, still counted.
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}


def _route_of(request):
    """The URL pattern the request matched (`/api/v1/devices/<str:token>`), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return "(unmatched)"
    if match.route == "^.*$":
        return "(not found)"
    return "/" + match.route.lstrip("^").rstrip("$")


def _request_id_from(value):
    return value if value and _SAFE_ID.match(value) else uuid.uuid4().hex


class RequestIdMiddleware(AsyncCapableMiddleware):
    def _begin(self, request):
        request_id = _request_id_from(request.headers.get("X-Request-ID", ""))
        request.request_id = request_id
        return set_request_id(request_id), time.monotonic()

    def _end(self, request, *, token, started, status):
        listener = request_listener(request)
        seconds = time.monotonic() - started
        metrics.request_observed(
            listener=listener, method=request.method, status=status, seconds=seconds, request=request
        )
        logger.log(
            logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO,
            "request",
            extra={
                "listener": listener,
                "method": request.method,
                "route": _route_of(request),  # never the raw path or the query string
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        reset_request_id(token)

    def handle(self, request):
        token, started = self._begin(request)
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            self._end(request, token=token, started=started, status=status)

    async def __acall__(self, request):
        token, started = self._begin(request)
        status = 500
        try:
            response = await self.get_response(request)
            status = response.status_code
            response["X-Request-ID"] = request.request_id
            return response
        finally:
            self._end(request, token=token, started=started, status=status)


class HostileInputMiddleware(AsyncCapableMiddleware):
    """A NUL or a lone surrogate in the path or the query string (`DELETE /api/v1/devices/a%00b`):
    400 in the envelope before any view, instead of a DataError from PostgreSQL."""

    @staticmethod
    def refusal(request):
        parts = [request.path, *request.GET.keys(), *(v for values in request.GET.lists() for v in values[1])]
        if not all(text_is_storable(part) for part in parts):
            return JsonResponse(
                envelope("bad_request", "Alamat berisi karakter yang tidak diizinkan."), status=400
            )
        return None

    def handle(self, request):
        return self.refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self.refusal(request) or await self.get_response(request)


class ApiDocsCorsMiddleware(AsyncCapableMiddleware):
    """The API docs live on the internal listener and "Try it out" calls the public one: the
    public API answers the control center's origin (CC_ORIGIN) cross-origin, preflight included.
    No cookies cross (the API uses bearer tokens), and no other origin is allowed."""

    ALLOW_HEADERS = "Authorization, Content-Type"
    ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"

    @staticmethod
    def allowed_origin(request):
        """The caller's origin when it may call cross-origin, else None."""
        origin = request.headers.get("Origin")
        allowed = (
            origin
            and origin == settings.CC_ORIGIN
            and request_listener(request) == PUBLIC
            and request.path.startswith("/api/")
        )
        return origin if allowed else None

    @staticmethod
    def is_preflight(request):
        return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers

    def preflight(self):
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = self.ALLOW_METHODS
        response["Access-Control-Allow-Headers"] = self.ALLOW_HEADERS
        response["Access-Control-Max-Age"] = "600"
        return response

    @staticmethod
    def finish(response, origin, *, exposes):
        if exposes:
            response["Access-Control-Expose-Headers"] = "Retry-After"
        response["Access-Control-Allow-Origin"] = origin
        patch_vary_headers(response, ("Origin",))
        return response

    def handle(self, request):
        origin = self.allowed_origin(request)
        if origin is None:
            return self.get_response(request)
        if self.is_preflight(request):
            return self.finish(self.preflight(), origin, exposes=False)
        return self.finish(self.get_response(request), origin, exposes=True)

    async def __acall__(self, request):
        origin = self.allowed_origin(request)
        if origin is None:
            return await self.get_response(request)
        if self.is_preflight(request):
            return self.finish(self.preflight(), origin, exposes=False)
        return self.finish(await self.get_response(request), origin, exposes=True)


class SocketObservabilityMiddleware:
    """ASGI middleware for WebSocket scopes: a request id for the socket's whole life (log lines
    of its consumer carry it), the open-sockets gauge, and one log line at accept and at close.
    Wrap the WebSocket router with it; other scope types pass through untouched.

    It counts nothing per `websocket.send`: chat messages may be written past `observed_send`
    by the server's synchronous writer (halobestie/server/send_now.py), so anything counted per
    frame here would have to be counted there too."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        request_id = _request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        scope = dict(scope, request_id=request_id)
        token = set_request_id(request_id)
        state = {"accepted": False, "close_code": None}
        started = time.monotonic()

        async def observed_send(message):
            if message["type"] == "websocket.accept" and not state["accepted"]:
                state["accepted"] = True
                metrics.SOCKETS_OPEN.inc()
                logger.info("socket accepted", extra={"path": scope.get("path", "")})
            elif message["type"] == "websocket.close":
                state["close_code"] = message.get("code", 1000)
            await send(message)

        try:
            return await self.app(scope, receive, observed_send)
        finally:
            if state["accepted"]:
                metrics.SOCKETS_OPEN.dec()
                logger.info(
                    "socket closed",
                    extra={
                        "path": scope.get("path", ""),
                        "close_code": state["close_code"],
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    },
                )
            reset_request_id(token)
