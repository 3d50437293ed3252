"""Refusals at the socket: authentication, tickets, garbage, oversized frames, floods. Each is
answered with its code and the socket (or the server) survives."""

import json
import uuid

import pytest
import requests

from halobestie.accounts.tokens import tokens_for
from sessions_app.models import ChatSession, Message, RealtimeTicket
from tests.realtime.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


def _ticket(base_url, user):
    response = requests.post(
        f"{base_url}/api/v1/realtime/ticket",
        headers={"Authorization": f"Bearer {tokens_for(user)['access']}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_it_opens_a_socket_with_a_ticket_once(public_server, make_client_user):
    user = make_client_user()
    ticket = _ticket(public_server, user)
    assert set(ticket) == {"ticket", "expires_at"}
    with Socket(public_server, ticket=ticket["ticket"]) as first:
        assert first.expect_type("hello")["user_id"] == user.id
    with Socket(public_server, ticket=ticket["ticket"]) as second:
        error = second.expect_type("error")
        assert error["code"] == "ticket_not_valid"
        assert second.wait_closed() == 4001
    stored = RealtimeTicket.objects.get(user=user)
    assert stored.used_at is not None and ticket["ticket"] not in stored.token_hash


def test_it_refuses_sockets_without_valid_credentials_with_4001(public_server, make_client_user):
    for kwargs, code in [
        ({}, "unauthenticated"),
        ({"token": "not-a-jwt"}, "token_not_valid"),
        ({"ticket": "made-up"}, "ticket_not_valid"),
    ]:
        with Socket(public_server, **kwargs) as s:
            assert s.expect_type("error")["code"] == code
            assert s.wait_closed() == 4001
    with Socket(public_server, make_client_user()) as s:
        s.send({"type": "ping"})
        assert s.expect_type("pong") == {"type": "pong"}


def test_it_answers_garbage_frames_with_errors_and_keeps_the_socket(public_server, active_session):
    session, client, mitra = active_session()
    sid = str(session.id)
    cases = [
        ("not json", "bad_frame", None),
        ("[1, 2]", "bad_frame", None),
        (json.dumps({"no": "type"}), "bad_frame", None),
        (json.dumps({"type": "explode"}), "unknown_type", "explode"),
        (json.dumps({"type": "message.send", "session_id": sid, "body": "x"}),
         "validation_error", "message.send"),
        (json.dumps({"type": "message.send", "session_id": "nope", "client_msg_id": "a", "body": "x"}),
         "validation_error", "a"),
        (json.dumps({"type": "message.send", "session_id": sid, "client_msg_id": "b", "body": 5}),
         "validation_error", "b"),
        (json.dumps({"type": "message.send", "session_id": sid, "client_msg_id": "c", "body": "   "}),
         "validation_error", "c"),
        (json.dumps({"type": "message.send", "session_id": str(uuid.uuid4()), "client_msg_id": "d",
                     "body": "x"}),
         "session_not_found", "d"),
        (json.dumps({"type": "typing", "session_id": sid, "is_typing": "yes"}), "validation_error", "typing"),
        (json.dumps({"type": "read", "session_id": sid, "up_to_seq": -1}), "validation_error", "read"),
        (json.dumps({"type": "sync", "session_id": sid, "after_seq": "0"}), "validation_error", "sync"),
        ("x" * 25_000, "frame_too_large", None),
    ]  # fmt: skip
    with Socket(public_server, client) as c:
        c.expect_type("hello")
        for raw, code, ref in cases:
            c.send(raw)
            error = c.expect_type("error")
            assert (error["code"], error.get("ref")) == (code, ref), raw[:80]
        c.ws.send(b"\x00\x01binary")
        assert c.expect_type("error")["code"] == "bad_frame"
        cmid = c.send_message(session.id, "masih hidup")
        assert c.expect_type("message.ack", client_msg_id=cmid)["seq"] == 1
    assert Message.objects.filter(session=session).count() == 1


def test_it_refuses_a_5000_character_body(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c:
        cmid = c.send_message(session.id, "a" * 5000)
        error = c.expect_type("error")
        assert (error["code"], error["ref"]) == ("body_too_long", cmid)
        cmid = c.send_message(session.id, "a" * 4000)
        assert c.expect_type("message.ack", client_msg_id=cmid)["seq"] == 1
    assert [len(b) for b in Message.objects.filter(session=session).values_list("body", flat=True)] == [4000]


def test_it_rate_limits_a_flood_and_stores_only_what_it_acked(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c:
        sent = [c.send_message(session.id, f"banjir {n}") for n in range(40)]
        answers = [c.expect(lambda f: f["type"] in ("message.ack", "error")) for _ in sent]
        acked = [a["client_msg_id"] for a in answers if a["type"] == "message.ack"]
        limited = [a["ref"] for a in answers if a["type"] == "error" and a["code"] == "rate_limited"]
        assert len(acked) + len(limited) == 40
        assert 20 <= len(acked) < 40 and limited
        c.send({"type": "ping"})
        c.expect_type("pong")
    stored = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_msg_id"))
    assert stored == list(enumerate(acked, start=1))
    assert ChatSession.objects.get(pk=session.pk).last_seq == len(acked)
