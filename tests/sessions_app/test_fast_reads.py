"""A session's state and its messages answered before Django (sessions_app/fast_reads.py),
through the real public ASGI application: the participant gets the same bytes as from the view,
and everyone else gets Django's own answer (401, 404, 400), never more than the view gives."""

import asyncio
from datetime import timedelta

import httpx
from django.utils import timezone
from prometheus_client import REGISTRY

from halobestie.accounts.models import User
from halobestie.accounts.tokens import access_revoke, tokens_for
from halobestie.asgi import public_application
from halobestie.server import fastpath
from sessions_app import lifecycle
from sessions_app.models import Message
from tests.conftest import auth_client


def _get_all(requests):
    """[(path, headers)] → the answers, on a fresh event loop against the public application."""

    async def main():
        transport = httpx.ASGITransport(app=public_application, client=("192.0.2.5", 41000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]

    return asyncio.run(asyncio.wait_for(main(), timeout=60))


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
        ]
    )

    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 404, 404, 401, 401, 400, 400, 200, 404, 400]
    assert answers[0].content == from_view
    assert answers[1].content == history_from_view
    assert [m["seq"] for m in answers[1].json()["results"]] == [3, 4]
    assert answers[0].headers["x-request-id"]
    assert _count("api/v1/sessions/<uuid:session_id>", "200") == counted + 1
    # The two participants' reads were answered before Django; the repeated `limit` (which the
    # fast route does not take) and every refusal by Django.
    assert (
        fastpath.served["api/v1/sessions/<uuid:session_id>"]
        - served.get("api/v1/sessions/<uuid:session_id>", 0)
        == 1
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
