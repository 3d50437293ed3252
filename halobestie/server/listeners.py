"""Which listener a request came in on, and the URLconf that belongs to it.

The internal ASGI app marks its scope with `halobestie.listener = "internal"`; every other
request (the public app, the test client) gets the public URLconf, which has no admin at all.
A header could be forged, so the mark is set only by the ASGI wrapper, never from the request.
"""

from django.conf import settings

from halobestie.server.async_capable import AsyncCapableMiddleware

SCOPE_KEY = "halobestie.listener"
INTERNAL = "internal"
PUBLIC = "public"


def request_listener(request):
    scope = getattr(request, "scope", None) or {}
    return scope.get(SCOPE_KEY, PUBLIC)


class ListenerUrlconfMiddleware(AsyncCapableMiddleware):
    @staticmethod
    def mark(request):
        if request_listener(request) == INTERNAL:
            request.urlconf = settings.INTERNAL_URLCONF

    def handle(self, request):
        self.mark(request)
        return self.get_response(request)

    async def __acall__(self, request):
        self.mark(request)
        return await self.get_response(request)


class MarkListener:
    """ASGI wrapper that tags every scope with the listener it arrived on."""

    def __init__(self, app, listener):
        self.app = app
        self.listener = listener

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope[SCOPE_KEY] = self.listener
        return await self.app(scope, receive, send)
