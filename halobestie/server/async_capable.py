"""The base of our Django middleware: sync- and async-capable, as Django's own MiddlewareMixin is,
so that under ASGI the chain runs on the event loop and Django adapts none of ours with a thread
hop (issue 22). A subclass writes its work once, in helpers, and calls them from both `handle`
(synchronous) and `__acall__` (asynchronous)."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class AsyncCapableMiddleware:
    """A middleware Django runs in the mode of the handler it wraps: `handle` when that is
    synchronous, the coroutine `__acall__` when it is asynchronous (ASGI)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self.handle(request)

    def handle(self, request):
        raise NotImplementedError

    async def __acall__(self, request):
        raise NotImplementedError
