"""Django's built-in middleware, with the hooks that do no I/O run on the event loop under ASGI.

Why: Django's MiddlewareMixin, in an async chain, runs every `process_request` and
`process_response` through `sync_to_async(thread_sensitive=True)`, a hop to the process's one
shared thread and back. Once our own middleware became async-capable (issue 22,
halobestie/server/async_capable.py) the chain is async end to end, and the seven built-ins below
cost 13 such hops per request: measured through Django (fast routes off), ≈ 30 % more CPU per
request than the old synchronous chain. Their hooks only read and write the request and the
response (headers, cookies, lazy objects), so here they run inline; where a hook may touch the
database it still takes the hop, and only then:

- SessionMiddleware: saving the session (`modified`, or SESSION_SAVE_EVERY_REQUEST) hops;
- MessageMiddleware: storing messages (the fallback storage may write the session) hops;
- CsrfViewMiddleware: inline only with the CSRF token in a cookie (CSRF_USE_SESSIONS off).

In a synchronous chain (WSGI, the test client) each class is exactly Django's.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core import checks
from django.middleware import clickjacking, common, csrf, security
from django.utils.module_loading import import_string


class InlineHooks:
    """`__acall__` of MiddlewareMixin without the thread hops: for hooks that do no I/O."""

    def _request_inline(self, request) -> bool:
        return True

    def _response_inline(self, request, response) -> bool:
        return True

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self._request_inline(request):
                response = self.process_request(request)
            else:
                response = await sync_to_async(self.process_request, thread_sensitive=True)(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self._response_inline(request, response):
                response = self.process_response(request, response)
            else:
                hop = sync_to_async(self.process_response, thread_sensitive=True)
                response = await hop(request, response)
        return response


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    """Sets the lazy `request.user` (loaded, from the database, only where a view reads it)."""


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    """The session store is lazy: reading the cookie is inline, saving the session is not."""

    def _response_inline(self, request, response):
        session = getattr(request, "session", None)
        return session is None or not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    """Nothing to store (no message added or read): inline; else Django's hop."""

    def _response_inline(self, request, response):
        storage = getattr(request, "_messages", None)
        return storage is None or not (storage.used or storage.added_new)


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    """The token lives in a cookie: inline, `process_view` too (Django's handler adapts a
    synchronous `process_view` with a hop; under ASGI this instance offers it as a coroutine).
    With CSRF_USE_SESSIONS the token lives in the session (a database read): Django's hops."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode and not settings.CSRF_USE_SESSIONS:
            check = super().process_view

            async def process_view(request, callback, callback_args, callback_kwargs):
                return check(request, callback, callback_args, callback_kwargs)

            self.process_view = process_view

    def _request_inline(self, request):
        return not settings.CSRF_USE_SESSIONS

    def _response_inline(self, request, response):
        return not settings.CSRF_USE_SESSIONS


# Django's deploy checks security.W001/W002/W003 look for Django's own dotted paths in MIDDLEWARE
# and so cannot see these subclasses (they are silenced in settings); this check asks the same
# question of the classes, subclasses included, as an error.
REQUIRED = {
    "security.W001": security.SecurityMiddleware,
    "security.W002": clickjacking.XFrameOptionsMiddleware,
    "security.W003": csrf.CsrfViewMiddleware,
}


@checks.register(checks.Tags.security, deploy=True)
def check_security_middleware(app_configs=None, **kwargs):
    installed = [import_string(path) for path in settings.MIDDLEWARE]
    return [
        checks.Error(
            f"{required.__module__}.{required.__name__} (or a subclass of it) is not in MIDDLEWARE.",
            hint="halobestie/server/inline_builtins.py has the subclass to use.",
            id=f"halobestie.{check_id.replace('.', '_')}",
        )
        for check_id, required in REQUIRED.items()
        if not any(issubclass(cls, required) for cls in installed if isinstance(cls, type))
    ]
