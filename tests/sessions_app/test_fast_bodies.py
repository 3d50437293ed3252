"""The bodies PostgreSQL renders for the fast reads (sessions_app/fast_bodies.py) are the views'
bytes in every state a session shows: awaiting payment, waiting, offered, active, ended and
rated, cancelled; with and without a payment, preferences held and relaxed, odd texts, times with
and without microseconds, in Asia/Jakarta, UTC and zones with half-hour and negative offsets."""

import asyncio
from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone

from halobestie.accounts.models import User
from halobestie.accounts.tokens import tokens_for
from halobestie.db import async_reads
from payments.models import Payment
from sessions_app import fast_bodies, fast_reads, lifecycle
from sessions_app.models import ChatSession, Message
from tests.conftest import auth_client


@pytest.fixture(autouse=True)
def _patient_pool(monkeypatch):
    """The tests here compare the body PostgreSQL writes: on a loaded machine the pool's first
    connection may take longer than the production bound (1 s, after which Django answers and
    the fast body is None), so they wait for it."""
    monkeypatch.setattr(async_reads, "POOL_TIMEOUT", 30.0)
    monkeypatch.setattr(async_reads, "_retry_at", 0.0)


ZONES = ("Asia/Jakarta", "UTC", "Asia/Kathmandu", "America/St_Johns")  # +07, 0, +05:45, -03:30/-02:30


def _run(handler, user, session, query=b""):
    """The fast route's body for `user` (None: declined, Django answers) and the statements it ran."""
    scope = {
        "type": "http",
        "client": ("192.0.2.5", 41000),
        "headers": [(b"authorization", f"Bearer {tokens_for(user)['access']}".encode())],
        "query_string": query,
    }

    async def main():
        try:
            return await handler(scope, {"session_id": str(session.id)})
        finally:
            await async_reads.close_pools()

    before = async_reads.statements_run
    body = asyncio.run(main())
    return body, async_reads.statements_run - before


def _assert_state_as_the_view(user, session):
    """The same bytes as the view's with TIME_ZONE in each of ZONES (the zone the pool's sessions
    show times in), and with another zone activated (rendered by the serializer then)."""
    for zone in ZONES:
        with override_settings(TIME_ZONE=zone):
            from_view = auth_client(user).get(f"/api/v1/sessions/{session.id}")
            # Not the serializer's read: the body came from PostgreSQL.
            with mock.patch.object(fast_reads, "_read", side_effect=AssertionError):
                body, ran = _run(fast_reads.session_state, user, session)
        assert from_view.status_code == 200
        assert body == from_view.content, zone
        assert ran == 1
    with timezone.override("Asia/Kolkata"):
        assert _run(fast_reads.session_state, user, session)[0] == (
            auth_client(user).get(f"/api/v1/sessions/{session.id}").content
        )
    return from_view.json()


def _assert_history_as_the_view(user, session, query=""):
    path = f"/api/v1/sessions/{session.id}/messages{query}"
    for zone in ZONES:
        with override_settings(TIME_ZONE=zone):
            from_view = auth_client(user).get(path)
            body, ran = _run(fast_reads.message_history, user, session, query.lstrip("?").encode())
        assert from_view.status_code == 200
        assert body == from_view.content, (zone, query)
        assert ran == 1
    with timezone.override("Asia/Kolkata"):
        body, _ = _run(fast_reads.message_history, user, session, query.lstrip("?").encode())
        assert body == auth_client(user).get(path).content
    return from_view.json()


def test_a_session_awaiting_payment_shows_its_invoice_as_the_view_does(make_client_user):
    client = make_client_user()
    User.objects.filter(pk=client.pk).update(display_name="")  # shown as "Klien"
    topics = ["kerja", 'kutip "ini"']
    session = lifecycle.session_create(
        client=client, package_code="curhat-30", topics=topics, gender="female", language="jv"
    )
    shown = _assert_state_as_the_view(client, session)
    assert shown["status"] == "pending_payment"
    assert shown["client_display_name"] == "Klien"
    assert shown["payment"]["expires_at"].endswith("+00:00")
    assert shown["preferences"]["held"] == ["gender", "topics", "language"]

    # Expiry times with trailing zeros in the microseconds, whole seconds, none at all.
    for expires_at in (
        timezone.now().replace(microsecond=120000),
        timezone.now().replace(microsecond=0),
        None,
    ):
        Payment.objects.filter(session=session).update(expires_at=expires_at)
        _assert_state_as_the_view(client, session)


def test_a_waiting_session_is_rendered_by_the_serializer(paid_session):
    """Its place in the queue and wait estimate read more: the serializer renders it, after the
    one statement told its status."""
    paid_session()
    session = paid_session()
    session.refresh_from_db()
    assert session.status == "matching"
    for zone in ZONES:
        with override_settings(TIME_ZONE=zone):
            from_view = auth_client(session.client).get(f"/api/v1/sessions/{session.id}").content
            body, ran = _run(fast_reads.session_state, session.client, session)
        assert body == from_view
        assert ran == 2
    assert b'"queue_position":2' in body


def test_offered_active_and_ended_sessions_show_as_the_view_does(
    paid_session, online_mitra, make_client_user
):
    name = 'Bestie "Ana"\u2028🙂'
    mitra = online_mitra(avatar_url="https://cdn.example/a.png?x=1&y=%22", display_name=name)
    client = make_client_user()
    User.objects.filter(pk=client.pk).update(display_name="Rina\nSari")
    session = paid_session(client=client, mitra=mitra, allow_any_mitra=False)
    session.refresh_from_db()
    assert session.status == "offered"
    for user in (client, mitra.user):
        shown = _assert_state_as_the_view(user, session)
    assert shown["mitra"]["display_name"] == 'Bestie "Ana"\u2028🙂'

    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    ChatSession.objects.filter(pk=session.pk).update(
        relaxed_preferences=["gender"],
        accepted_at=timezone.now().replace(microsecond=0),
        ends_at=timezone.now().replace(microsecond=500000) + timedelta(minutes=30),
    )
    for user in (client, mitra.user):
        shown = _assert_state_as_the_view(user, session)
    assert shown["status"] == "active"
    assert shown["mitra_lost_at"] is None

    lifecycle.session_end(session_id=session.id, actor=client)
    for user in (client, mitra.user):
        shown = _assert_state_as_the_view(user, session)
    assert shown["status"] == "ended" and shown["is_rated"] is False

    lifecycle.session_rate(session_id=session.id, client=client, score=5, comment="makasih")
    for user in (client, mitra.user):
        shown = _assert_state_as_the_view(user, session)
    assert shown["is_rated"] is True


def test_a_session_with_preferences_relaxed_and_no_payment_shows_as_the_view_does(make_client_user):
    client = make_client_user()
    session = lifecycle.session_create(
        client=client, package_code="curhat-30", topics=["émoji 🙂", "a\\b", "tab\there"], language="en"
    )
    lifecycle.session_end(session_id=session.id, actor=client)  # cancelled before payment
    ChatSession.objects.filter(pk=session.pk).update(relaxed_preferences=["language", "topics"])
    Payment.objects.filter(session=session).delete()
    shown = _assert_state_as_the_view(client, session)
    assert shown["payment"] is None
    assert shown["preferences"]["held"] == []
    assert shown["preferences"]["relaxed"] == ["language", "topics"]


def test_every_page_of_the_history_shows_as_the_view_does(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    now = timezone.now().replace(microsecond=0)
    Message.objects.bulk_create(
        [
            Message(
                session=session,
                seq=n,
                sender=session.client,
                body=f"halo {n}",
                created_at=now + timedelta(seconds=n, microseconds=n * 10),
            )
            for n in range(1, 8)
        ]
    )
    Message.objects.filter(session=session, seq=2).update(is_masked=True, body="nomor [disembunyikan]")
    Message.objects.filter(session=session, seq=3).update(body="", body_purged_at=now, created_at=now)
    odd = 'a\u2029 \x01 "b" \\ \u2028'
    Message.objects.filter(session=session, seq=4).update(client_msg_id="c-4", body=odd)
    Message.objects.filter(session=session, seq=5).update(sender=None, kind="system")
    for user in (session.client, mitra.user):
        for query in (
            "",
            "?limit=1",
            "?limit=2",
            "?after_seq=4&limit=3",
            "?after_seq=6&limit=1",
            "?after_seq=7",
            "?after_seq=99",
            "?limit=500",
        ):
            page = _assert_history_as_the_view(user, session, query)
    # Other spellings MessagesQuery takes (read by the serializer), and what it refuses (Django's 400).
    for query in ("?limit=003&after_seq=0002", "?limit=+5", "?after_seq=1%20"):
        _assert_history_as_the_view(mitra.user, session, query)
    for query in (b"limit=501", b"limit=0", b"after_seq=-1", b"limit=", b"limit=5&limit=6"):
        assert _run(fast_reads.message_history, mitra.user, session, query) == (None, 0)
    assert page["has_more"] is False and len(page["results"]) == 7
    assert _assert_history_as_the_view(mitra.user, session, "?after_seq=7")["results"] == []
    assert _assert_history_as_the_view(mitra.user, session, "?limit=6")["has_more"] is True


def test_other_json_settings_are_rendered_by_the_serializers(paid_session, online_mitra, monkeypatch):
    """ASCII-only JSON (UNICODE_JSON off when DRF was imported) is not what PostgreSQL writes: the
    serializers render."""
    from rest_framework.renderers import JSONRenderer

    mitra = online_mitra(display_name="Bestie 🙂")
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    Message.objects.create(session=session, seq=1, sender=session.client, body="é", created_at=timezone.now())
    monkeypatch.setattr(JSONRenderer, "ensure_ascii", True)
    fast_reads._rendered_statement.cache_clear()
    try:
        assert fast_bodies.session_json() is None
        state = auth_client(mitra.user).get(f"/api/v1/sessions/{session.id}").content
        body, ran = _run(fast_reads.session_state, mitra.user, session)
        assert body == state and b"\\ud83d" in body
        assert ran == 1  # the serializers' read only
        history = auth_client(mitra.user).get(f"/api/v1/sessions/{session.id}/messages").content
        body, _ = _run(fast_reads.message_history, mitra.user, session)
        assert body == history and b"\\u00e9" in body
    finally:
        monkeypatch.undo()
        fast_reads._rendered_statement.cache_clear()
    assert fast_bodies.session_json() is not None
