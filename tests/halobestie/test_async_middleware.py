"""Our middleware is sync- and async-capable (halobestie/server/async_capable.py): under ASGI,
Django builds the whole chain as coroutines, with no thread hop in front of ours, and every one
of ours still does its job in either mode."""

import asyncio
import threading

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from halobestie.errors import DatabaseUnavailableMiddleware
from halobestie.server.language import LanguageMiddleware
from halobestie.server.listeners import ListenerUrlconfMiddleware
from halobestie.server.middleware import ApiDocsCorsMiddleware, HostileInputMiddleware, RequestIdMiddleware

OURS = (
    RequestIdMiddleware,
    HostileInputMiddleware,
    ApiDocsCorsMiddleware,
    ListenerUrlconfMiddleware,
    LanguageMiddleware,
    DatabaseUnavailableMiddleware,
)

seen = {}


async def async_view(request):
    seen["thread"] = threading.current_thread()
    seen["language"] = request.LANGUAGE_CODE
    return JsonResponse({"ok": True})


def sync_view(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("api/v1/async-probe", async_view), path("api/v1/sync-probe", sync_view)]


def _on_a_loop(coroutine):
    return asyncio.run(coroutine)


def _chain(handler):
    """The middleware chain Django built, outermost first: each link and what it wraps."""
    links = []
    link = handler._middleware_chain
    while link is not None:
        links.append(link)
        instance = getattr(link, "__wrapped__", link)
        if instance is not link:
            links.append(instance)
        link = getattr(instance, "get_response", None)
    return links


def test_it_runs_the_whole_chain_as_coroutines_under_asgi():
    handler = ASGIHandler()  # load_middleware(is_async=True), as the server's

    links = _chain(handler)

    assert {type(link) for link in links} >= set(OURS)
    # No link is a thread adapter (SyncToAsync / AsyncToSync): each one is a coroutine function.
    assert all(iscoroutinefunction(link) for link in links), [
        link for link in links if not iscoroutinefunction(link)
    ]
    assert all(link.is_async for link in links if isinstance(link, OURS))


def test_it_runs_the_chain_synchronously_under_wsgi():
    handler = BaseHandler()
    handler.load_middleware(is_async=False)

    ours = [link for link in _chain(handler) if isinstance(link, OURS)]

    assert {type(link) for link in ours} == set(OURS)
    assert not any(link.is_async or iscoroutinefunction(link) for link in ours)


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_an_async_view_runs_on_the_event_loop_with_every_middleware_applied():
    async def call():
        seen["caller"] = threading.current_thread()
        client = AsyncClient()
        return await client.get("/api/v1/async-probe", headers={"X-Request-ID": "probe-1"})

    response = _on_a_loop(call())

    assert response.status_code == 200
    assert seen["thread"] is seen["caller"]  # the loop's own thread: no hop to run the view
    assert response["X-Request-ID"] == "probe-1"
    assert response["Content-Language"] == "id" and seen["language"] == "id"
    assert "Cookie" in response["Vary"]


@pytest.mark.django_db
def test_the_answers_are_the_same_in_both_modes(settings):
    settings.ROOT_URLCONF = __name__
    settings.CC_ORIGIN = "https://cc.example"
    requests = [
        ("/api/v1/sync-probe", {"X-Request-ID": "same-1"}),
        ("/api/v1/sync-probe?x=%00", {}),  # HostileInputMiddleware: 400 in the envelope
        ("/api/v1/sync-probe", {"Origin": "https://cc.example"}),  # ApiDocsCorsMiddleware
    ]

    def shape(response):
        headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
        return response.status_code, response.content, headers

    synchronous = [Client().get(url, headers=headers) for url, headers in requests]

    async def call():
        client = AsyncClient()
        return [await client.get(url, headers=headers) for url, headers in requests]

    asynchronous = _on_a_loop(call())

    assert [shape(a) for a in asynchronous] == [shape(s) for s in synchronous]
    assert synchronous[0]["X-Request-ID"] == asynchronous[0]["X-Request-ID"] == "same-1"
    assert synchronous[1].status_code == 400 and synchronous[1].json()["error"]["code"] == "bad_request"
    assert asynchronous[2]["Access-Control-Allow-Origin"] == "https://cc.example"


def _counting_hops(monkeypatch):
    """Counts sync_to_async calls (asgiref's thread hops) while a request is served."""
    from asgiref.sync import SyncToAsync

    hops = []
    original = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return hops


async def session_writing_view(request):
    await request.session.aset("probe", "1")
    return JsonResponse({"ok": True})


urlpatterns.append(path("api/v1/session-probe", session_writing_view))


@pytest.mark.django_db
def test_djangos_built_ins_take_no_thread_hop_for_a_request_that_does_no_io_in_them(settings, monkeypatch):
    # halobestie/server/inline_builtins.py: with the chain async, Django's MiddlewareMixin would
    # hop to a thread for each of its hooks (13 per request); here none of them does.
    settings.ROOT_URLCONF = __name__
    hops = _counting_hops(monkeypatch)

    async def call():
        return await AsyncClient().get("/api/v1/async-probe")

    response = _on_a_loop(call())

    assert response.status_code == 200
    # What still hops is Django's handler itself (request_started/finished receivers: the
    # connection clean-up), not a middleware hook.
    assert [hop for hop in hops if "process_" in hop or "Middleware" in hop] == [], hops
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db(transaction=True)
def test_a_session_that_must_be_saved_still_is_saved_on_a_thread(settings, monkeypatch):
    from django.contrib.sessions.models import Session

    settings.ROOT_URLCONF = __name__
    hops = _counting_hops(monkeypatch)

    async def call():
        return await AsyncClient().get("/api/v1/session-probe")

    response = _on_a_loop(call())

    assert response.status_code == 200
    assert any("process_response" in hop for hop in hops)  # the save: Django's hop, only here
    key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.get(session_key=key).get_decoded() == {"probe": "1"}


def test_the_deploy_check_still_requires_the_security_middleware(settings):
    from halobestie.server.inline_builtins import check_security_middleware

    assert check_security_middleware() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith(".XFrameOptionsMiddleware")]
    assert [error.id for error in check_security_middleware()] == ["halobestie.security_W002"]
