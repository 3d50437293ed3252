"""The beacon and the public config as fast routes (halobestie/server/fastpath.py): answered by
the public ASGI application from process memory, before Django, with the request id, the log line
and the metrics Django's middleware would give; everything that is not an exact GET goes to
Django. Driven through the real ASGI application (`halobestie.asgi.public_application`)."""

import asyncio
import logging

import httpx
import psycopg
import pytest
from django.db import connection
from prometheus_client import REGISTRY

from halobestie.asgi import public_application
from halobestie.integrations import valkey
from halobestie.runtime import fast
from mitras import beacon, mirror, services
from tests.servers import ThrowawayValkey


@pytest.fixture(autouse=True)
def _fresh_bodies():
    for cached in (beacon.snapshot, fast.body):
        cached.clear()
    ttls = (beacon.snapshot.ttl, fast.body.ttl)
    yield
    beacon.snapshot.ttl, fast.body.ttl = ttls
    for cached in (beacon.snapshot, fast.body):
        cached.clear()


def _run(scenario):
    """Run `scenario(client)` on a fresh event loop against the public ASGI application."""

    async def main():
        transport = httpx.ASGITransport(app=public_application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await asyncio.wait_for(scenario(client), timeout=30)

    return asyncio.run(main())


def _requests_counted(route, status="200"):
    value = REGISTRY.get_sample_value(
        "halobestie_http_request_duration_seconds_count",
        {"listener": "public", "method": "GET", "route": route, "status": status},
    )
    return value or 0


def test_the_beacon_answers_before_django_with_request_id_log_line_and_metrics(
    transactional_db, fresh_mirror, make_mitra, caplog
):
    services.mitra_set_online(mitra=make_mitra(), is_online=True)
    counted = _requests_counted("api/v1/availability")

    async def scenario(client):
        return await client.get("/api/v1/availability", headers={"X-Request-ID": "beacon-probe-1"})

    with caplog.at_level(logging.INFO, logger="halobestie.request"):
        response = _run(scenario)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "beacon-probe-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["online"] == 1
    assert _requests_counted("api/v1/availability") == counted + 1
    lines = [r for r in caplog.records if r.name == "halobestie.request"]
    assert [(r.route, r.status, r.method) for r in lines] == [("/api/v1/availability", 200, "GET")]
    assert beacon.snapshot.refreshes >= 1  # built by the fast route, not by the Django view


def test_a_made_up_request_id_replaces_an_unsafe_one(transactional_db, fresh_mirror):
    async def scenario(client):
        return await client.get("/api/v1/availability", headers={"X-Request-ID": b"bad id\xe9"})

    response = _run(scenario)
    assert response.status_code == 200
    assert response.headers["x-request-id"] != "bad id\u00e9"  # a made-up hex id instead
    assert len(response.headers["x-request-id"]) == 32


def test_the_beacon_answers_from_memory_while_valkey_and_postgres_are_both_unusable(
    transactional_db, make_mitra, settings, tmp_path
):
    """Within the cache time nothing is asked of Valkey (killed) or Postgres (the mitra table
    locked by another connection: a query would wait on it)."""
    server = ThrowawayValkey(tmp_path)
    server.start()
    original = settings.VALKEY_URL
    settings.VALKEY_URL = server.url
    valkey.reset_client()
    try:
        assert mirror.seed_from_postgres()
        services.mitra_set_online(mitra=make_mitra(), is_online=True)
        beacon.snapshot.ttl = 60

        async def first(client):
            return await client.get("/api/v1/availability")

        body = _run(first).content
        refreshes = beacon.snapshot.refreshes
        server.kill()
        params = connection.get_connection_params()
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as locker:
            locker.execute("BEGIN")
            locker.execute("LOCK TABLE mitras_mitra IN ACCESS EXCLUSIVE MODE")

            async def many(client):
                return [await client.get("/api/v1/availability") for _ in range(20)]

            answers = _run(many)
            locker.execute("ROLLBACK")
    finally:
        server.kill()
        settings.VALKEY_URL = original
        valkey.reset_client()
        mirror.seed_from_postgres()

    assert [a.status_code for a in answers] == [200] * 20
    assert {a.content for a in answers} == {body}
    assert beacon.snapshot.refreshes == refreshes


def test_the_beacon_refreshes_and_keeps_answering_the_previous_body_while_a_refresh_waits(
    transactional_db, fresh_mirror, make_mitra
):
    mitra = make_mitra()
    beacon.snapshot.ttl = 0  # every request finds the body due for a refresh

    async def scenario(client):
        first = (await client.get("/api/v1/availability")).json()
        services_done = asyncio.get_running_loop().run_in_executor(None, _online_in_own_thread, mitra.pk)
        await services_done
        # The refresh after the change shows it (a few requests: one refresh at a time, and a
        # request that finds one running gets the previous body without waiting).
        seen = []
        for _ in range(200):
            seen.append((await client.get("/api/v1/availability")).json()["online"])
            if seen[-1] == 1:
                break
            await asyncio.sleep(0.01)
        return first, seen

    first, seen = _run(scenario)
    assert first["online"] == 0
    assert seen[-1] == 1
    assert set(seen) <= {0, 1}


def _online_in_own_thread(mitra_pk):
    from django.db import close_old_connections

    from mitras.models import Mitra

    try:
        services.mitra_set_online(mitra=Mitra.objects.get(pk=mitra_pk), is_online=True)
    finally:
        close_old_connections()


def test_anything_but_an_exact_get_goes_to_django(transactional_db, fresh_mirror):
    async def scenario(client):
        return (
            await client.post("/api/v1/availability"),
            await client.get("/api/v1/availability?x=%00"),
            await client.get("/api/v1/availability?topic=karier"),
            await client.head("/api/v1/availability"),
        )

    post, nul, query, head = _run(scenario)
    assert post.status_code == 405
    assert post.json()["error"]["code"] == "method_not_allowed"
    assert nul.status_code == 400
    assert nul.json()["error"]["code"] == "bad_request"
    assert query.status_code == 200  # Django's view (which ignores it)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_the_config_route_answers_the_same_bytes_as_the_view(transactional_db, api):
    from_view = api.get("/api/v1/config")

    async def scenario(client):
        return await client.get("/api/v1/config")

    fast_answer = _run(scenario)
    assert fast_answer.status_code == 200
    assert fast_answer.content == from_view.content
    assert fast.body.refreshes >= 1


def test_the_fast_routes_keep_the_per_person_read_limit(transactional_db, fresh_mirror, settings):
    settings.API_THROTTLE_READS_PER_MINUTE = 3

    async def scenario(client):
        return [await client.get("/api/v1/availability") for _ in range(4)]

    answers = _run(scenario)
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = answers[3]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-request-id"]


def test_a_cross_origin_read_from_the_control_center_gets_django_cors_headers(transactional_db, settings):
    # The API docs' "Try it out" (halobestie/server/middleware.py, ApiDocsCorsMiddleware): the
    # fast route has no CORS headers, so the browser would refuse its answer.
    settings.CC_ORIGIN = "https://cc.example.test"

    async def scenario(client):
        return await client.get("/api/v1/config", headers={"Origin": "https://cc.example.test"})

    answer = _run(scenario)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://cc.example.test"


def test_a_fast_answer_over_https_carries_hsts_as_django_would(transactional_db, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = False

    async def scenario(client):
        return (
            await client.get("/api/v1/config", headers={"X-Forwarded-Proto": "https"}),
            await client.get("/api/v1/config"),
        )

    secure, plain = _run(scenario)
    assert fast.body.refreshes >= 1  # answered by the fast route
    assert secure.headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
    assert "strict-transport-security" not in plain.headers  # as Django: HTTPS only
