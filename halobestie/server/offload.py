"""CPU-heavy sync views off the process's shared thread (issue 22).

Under ASGI every sync Django view runs on ONE thread per process (asgiref's thread-sensitive
executor), so a view that hashes a password (login: PBKDF2, slow on purpose) holds up every other
sync view of the process, and four concurrent logins take one, two, three, four hash times.
`off_shared_thread(view)` runs the whole view (and the rendering of its answer) on a small pool
of its own instead (CPU_VIEW_THREADS threads). Each pool thread has its own database connection
(Django's are per thread), taken fresh at the start of each call and handed back at the end, as
a request does; the view's transactions therefore stay on one thread and one connection.

Outside an ASGI server (WSGI, Django's synchronous test client) the view runs where it would
have run anyway (the caller's thread), so tests wrapped in a transaction see their own rows.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest

_executor = None


def executor():
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.CPU_VIEW_THREADS, thread_name_prefix="cpu-view")
    return _executor


def _with_fresh_connections(view, request, *args, **kwargs):
    from django.db import close_old_connections

    close_old_connections()
    try:
        response = view(request, *args, **kwargs)
        if callable(getattr(response, "render", None)) and not getattr(response, "is_rendered", True):
            response = response.render()
        return response
    finally:
        close_old_connections()


def off_shared_thread(view):
    """An async view that runs the sync `view` on the CPU pool under ASGI."""

    @functools.wraps(view)
    async def async_view(request, *args, **kwargs):
        if isinstance(request, ASGIRequest):
            run = sync_to_async(
                functools.partial(_with_fresh_connections, view), thread_sensitive=False, executor=executor()
            )
        else:
            run = sync_to_async(view, thread_sensitive=True)
        return await run(request, *args, **kwargs)

    return async_view


class OffSharedThreadMixin:
    """For an APIView whose work is CPU-heavy (password hashing): `as_view()` runs it on the CPU
    pool (see the module)."""

    @classmethod
    def as_view(cls, **initkwargs):
        return off_shared_thread(super().as_view(**initkwargs))
