"""A session's state and its messages answered before Django (sessions_app/fast_reads.py), on the
event loop (no thread hop), through the real public ASGI application: the participant gets the
same bytes as from the view, and everyone else gets Django's own answer (401, 404, 400, 503),
never more than the view gives."""

import asyncio
from datetime import timedelta

import httpx
from django.utils import timezone
from prometheus_client import REGISTRY

from halobestie.accounts.models import User
from halobestie.accounts.tokens import access_revoke, tokens_for
from halobestie.asgi import public_application
from halobestie.db import async_reads
from halobestie.server import fastpath
from sessions_app import lifecycle
from sessions_app.models import Message
from tests.conftest import auth_client


def _get_all(requests):
    """[(path, headers)] → the answers, on a fresh event loop against the public application."""

    async def main():
        transport = httpx.ASGITransport(app=public_application, client=("192.0.2.5", 41000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return [await client.get(path, headers=headers) for path, headers in requests]
        finally:
            await async_reads.close_pools()

    return asyncio.run(asyncio.wait_for(main(), timeout=60))


def _run(handler, scope, session_id):
    """A fast route's handler on a fresh event loop: its body, or None (Django answers)."""

    async def main():
        try:
            return await handler(scope, {"session_id": session_id})
        finally:
            await async_reads.close_pools()

    return asyncio.run(main())


def _state(scope, session_id):
    from sessions_app import fast_reads

    return _run(fast_reads.session_state, scope, session_id)


def _history(scope, session_id):
    from sessions_app import fast_reads

    return _run(fast_reads.message_history, scope, session_id)


def _bearer(user):
    return {"Authorization": f"Bearer {tokens_for(user)['access']}"}


def _count(route, status):
    return (
        REGISTRY.get_sample_value(
            "halobestie_http_request_duration_seconds_count",
            {"listener": "public", "method": "GET", "route": route, "status": status},
        )
        or 0
    )


def _active_session(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    now = timezone.now()
    Message.objects.bulk_create(
        [
            Message(
                session=session,
                seq=n,
                sender=session.client,
                body=f"halo {n}",
                created_at=now + timedelta(seconds=n),
            )
            for n in range(1, 6)
        ]
    )
    return session, mitra


def test_the_participants_get_the_views_bytes_and_others_get_djangos_answers(
    paid_session, online_mitra, make_client_user, make_mitra
):
    session, mitra = _active_session(paid_session, online_mitra)
    client, stranger, other_mitra = session.client, make_client_user(), make_mitra()
    state, history = f"/api/v1/sessions/{session.id}", f"/api/v1/sessions/{session.id}/messages"
    from_view = auth_client(client).get(state).content
    history_from_view = auth_client(mitra.user).get(history + "?after_seq=2&limit=2").content
    counted = _count("api/v1/sessions/<uuid:session_id>", "200")
    served = dict(fastpath.served)

    answers = _get_all(
        [
            (state, _bearer(client)),
            (history + "?after_seq=2&limit=2", _bearer(mitra.user)),
            (state, _bearer(stranger)),
            (history, _bearer(other_mitra.user)),
            (state, {}),
            (state, {"Authorization": "Bearer not-a-token"}),
            (history + "?limit=0", _bearer(client)),
            (history + "?after_seq=%00", _bearer(client)),
            (history + "?limit=1&limit=2", _bearer(client)),
            (f"/api/v1/sessions/{str(session.id).upper()}", _bearer(stranger)),
            (state + "?x=%00", _bearer(client)),
            (state, {**_bearer(client), "Accept": "application/json; indent=2"}),
            (state, {**_bearer(client), "Accept": "text/html"}),
            (state, {**_bearer(client), "Accept": "text/html, application/json"}),
        ]
    )

    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 404, 404, 401, 401, 400, 400, 200, 404, 400, 200, 406, 200]
    assert answers[0].content == from_view
    assert answers[1].content == history_from_view
    # DRF's negotiation: indented when asked (answered by Django), JSON whenever it is accepted.
    assert answers[11].content.startswith(b"{\n") and answers[11].json() == answers[0].json()
    assert answers[13].content == from_view
    assert [m["seq"] for m in answers[1].json()["results"]] == [3, 4]
    assert answers[0].headers["x-request-id"]
    assert _count("api/v1/sessions/<uuid:session_id>", "200") == counted + 3  # 2 here, 1 by Django
    # The two participants' reads were answered before Django; the repeated `limit` (which the
    # fast route does not take) and every refusal by Django.
    assert (
        fastpath.served["api/v1/sessions/<uuid:session_id>"]
        - served.get("api/v1/sessions/<uuid:session_id>", 0)
        == 2  # the first read and the one accepting HTML or JSON
    )
    messages_route = "api/v1/sessions/<uuid:session_id>/messages"
    assert fastpath.served[messages_route] - served.get(messages_route, 0) == 1
    for refused in answers[2:8]:
        assert "error" in refused.json()
        assert "results" not in refused.json() and "status" not in refused.json()


def test_revoked_inactive_and_replaced_participants_get_nothing(paid_session, online_mitra, make_mitra):
    session, mitra = _active_session(paid_session, online_mitra)
    client = session.client
    state = f"/api/v1/sessions/{session.id}"
    revoked = tokens_for(client)["access"]
    from rest_framework_simplejwt.tokens import AccessToken

    payload = AccessToken(revoked).payload
    access_revoke(jti=payload["jti"], expires_at=timezone.now() + timedelta(minutes=15))
    mitra_token = _bearer(mitra.user)
    User.objects.filter(pk=mitra.user.pk).update(is_active=False)

    answers = _get_all([(state, {"Authorization": f"Bearer {revoked}"}), (state, mitra_token)])

    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json()["error"]["code"] == "token_revoked"


def _scope(user=None, *, token=None, query=b""):
    token = token or (tokens_for(user)["access"] if user else None)
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {"type": "http", "client": ("192.0.2.5", 41000), "headers": headers, "query_string": query}


def test_a_fast_read_costs_one_statement(paid_session, online_mitra):
    """The caller's token (not revoked), account, mitra, the session and its latest payment (or
    the page of messages) in one statement on the event loop's pool: the same bytes as the
    view's."""
    from payments.models import Payment
    from sessions_app import fast_reads

    session, mitra = _active_session(paid_session, online_mitra)
    state, history = f"/api/v1/sessions/{session.id}", f"/api/v1/sessions/{session.id}/messages"
    # The latest payment's time must print as the view's (trailing zeros of the microseconds,
    # whole seconds, none).
    expiries = [timezone.now().replace(microsecond=120000), timezone.now().replace(microsecond=0), None]
    users = [session.client, mitra.user, session.client]
    for user, expires_at in zip(users, expiries, strict=True):
        Payment.objects.filter(session=session).update(expires_at=expires_at)
        from_view = auth_client(user).get(state).content
        history_from_view = auth_client(user).get(history + "?after_seq=1&limit=3").content
        before = async_reads.statements_run
        body = _state(_scope(user), str(session.id))
        assert async_reads.statements_run - before == 1
        history_body = _history(_scope(user, query=b"after_seq=1&limit=3"), str(session.id))
        assert async_reads.statements_run - before == 2  # the page is read with the session
        assert body == from_view
        assert b'"payment":{"id":' in body
        assert history_body == history_from_view
    # Every field of MessageOut reads one column: the rows are shown without model instances.
    assert fast_reads._message_statement()[2] is not None


def test_the_history_shows_every_kind_of_message_as_the_view_does(paid_session, online_mitra):
    """Masked, purged, system and whole-second messages, an English zone, the first and last page."""
    from django.utils import translation

    session, mitra = _active_session(paid_session, online_mitra)
    now = timezone.now().replace(microsecond=0)
    Message.objects.filter(session=session, seq=2).update(is_masked=True, body="nomor [disembunyikan]")
    Message.objects.filter(session=session, seq=3).update(body="", body_purged_at=now, created_at=now)
    Message.objects.filter(session=session, seq=4).update(client_msg_id="c-4", body='émoji 🙂 \u2028 "kutip"')
    Message.objects.filter(session=session, seq=5).update(sender=None, kind="system")
    history = f"/api/v1/sessions/{session.id}/messages"
    for query in ("", "?limit=2", "?after_seq=4", "?after_seq=5", "?limit=500"):
        from_view = auth_client(mitra.user).get(history + query).content
        body = _history(_scope(mitra.user, query=query.lstrip("?").encode()), str(session.id))
        assert body == from_view, query
    with translation.override("en"):
        assert (
            _history(_scope(session.client), str(session.id))
            == auth_client(session.client).get(history).content
        )


def test_a_waiting_session_shows_its_place_in_the_queue_as_the_view_does(paid_session, make_client_user):
    """No Bestie free: the session waits, and its state (place, wait estimate) is the view's."""
    paid_session()  # ahead in the queue
    session = paid_session()
    session.refresh_from_db()
    assert session.status == "matching"
    state = f"/api/v1/sessions/{session.id}"
    from_view = auth_client(session.client).get(state).content
    assert b'"queue_position":2' in from_view
    assert _state(_scope(session.client), str(session.id)) == from_view


def test_a_token_seen_before_is_still_refused_once_revoked(paid_session, online_mitra):
    """Tokens are verified in memory once; revocation and the account are read on every request."""
    from rest_framework_simplejwt.tokens import AccessToken

    session, mitra = _active_session(paid_session, online_mitra)
    token = tokens_for(session.client)["access"]
    mitra_token = tokens_for(mitra.user)["access"]
    session_id = str(session.id)
    assert _state(_scope(token=token), session_id) is not None
    assert _state(_scope(token=mitra_token), session_id) is not None
    access_revoke(jti=AccessToken(token).payload["jti"], expires_at=timezone.now() + timedelta(minutes=15))
    User.objects.filter(pk=mitra.user.pk).update(is_active=False)
    assert _state(_scope(token=token), session_id) is None
    assert _state(_scope(token=mitra_token), session_id) is None

    answers = _get_all(
        [
            (f"/api/v1/sessions/{session_id}", {"Authorization": f"Bearer {token}"}),
            (f"/api/v1/sessions/{session_id}", {"Authorization": f"Bearer {mitra_token}"}),
        ]
    )
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
        (401, "token_revoked"),
        (401, "user_inactive"),
    ]


def test_without_the_database_the_read_is_left_to_django(paid_session, online_mitra, settings):
    """PostgreSQL not answering the pool: declined at once (Django answers, its 503 envelope when
    the database is down), and the pool is skipped for a second instead of waited on per read."""
    from django.db import connection

    session, _ = _active_session(paid_session, online_mitra)
    scope = _scope(session.client)
    port = connection.settings_dict["PORT"]
    try:
        connection.settings_dict["PORT"] = "1"  # nothing listens there
        assert _state(scope, str(session.id)) is None
        assert not async_reads.is_available()
        assert _state(scope, str(session.id)) is None  # skipped: not waited on again
    finally:
        connection.settings_dict["PORT"] = port
        async_reads._retry_at = 0.0
    assert _state(scope, str(session.id)) is not None


def test_the_one_statement_refuses_what_the_view_refuses(paid_session, online_mitra, make_mitra):
    """Declined (None: Django answers) for a revoked token, an inactive or deleted account, a
    deactivated mitra, a replaced mitra, another person's session, a wrong role claim."""
    from rest_framework_simplejwt.tokens import AccessToken

    from mitras.models import Mitra

    session, mitra = _active_session(paid_session, online_mitra)
    client, session_id = session.client, str(session.id)
    other = make_mitra()
    assert _state(_scope(client), session_id) is not None
    assert _state(_scope(other.user), session_id) is None

    revoked = tokens_for(client)["access"]
    access_revoke(jti=AccessToken(revoked).payload["jti"], expires_at=timezone.now() + timedelta(minutes=15))
    assert _state(_scope(token=revoked), session_id) is None
    assert _history(_scope(token=revoked), session_id) is None

    wrong_role = AccessToken.for_user(client)
    wrong_role["role"] = "mitra"
    assert _state(_scope(token=str(wrong_role)), session_id) is None

    mitra_token = tokens_for(mitra.user)["access"]
    assert _state(_scope(token=mitra_token), session_id) is not None
    Mitra.objects.filter(pk=mitra.pk).update(deactivated_at=timezone.now())
    assert _state(_scope(token=mitra_token), session_id) is None
    assert _history(_scope(token=mitra_token), session_id) is None

    client_token = tokens_for(client)["access"]
    User.objects.filter(pk=client.pk).update(deleted_at=timezone.now())
    assert _state(_scope(token=client_token), session_id) is None
    User.objects.filter(pk=client.pk).update(deleted_at=None, is_active=False)
    assert _state(_scope(token=client_token), session_id) is None
