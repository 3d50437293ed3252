"""Reconnect storms (issue 22): sockets connecting at once are authenticated together and `sync`
answers many sessions in one frame — with the same refusals as one socket alone."""

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from halobestie.accounts.tokens import access_revoke, tokens_for
from mitras.services import mitra_deactivate, mitra_set_online
from sessions_app.errors import NotParticipant, SessionNotFound
from sessions_app.models import Message
from tests.realtime.conftest import Socket


def test_many_sockets_at_once_each_get_their_own_answer(
    public_server, make_client_user, make_mitra, make_staff
):
    clients = [make_client_user() for _ in range(12)]
    revoked_user = make_client_user()
    revoked = tokens_for(revoked_user)["access"]
    claims = AccessToken(revoked)
    access_revoke(jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC))
    gone = make_mitra()
    gone_token = tokens_for(gone.user)["access"]
    mitra_deactivate(mitra=gone, actor=make_staff("admin"))
    cases = [(tokens_for(client)["access"], ("hello", client.id)) for client in clients]
    cases += [(revoked, ("error", "token_revoked")), (gone_token, ("error", "mitra_deactivated"))]
    cases += [(tokens_for(client)["access"], ("hello", client.id)) for client in clients[:3]]
    answers = [None] * len(cases)
    start = threading.Barrier(len(cases))

    def connect(index):
        start.wait()
        with Socket(public_server, token=cases[index][0]) as socket:
            frame = socket.recv()
            if frame["type"] == "hello":
                answers[index] = ("hello", frame["user_id"])
            else:
                answers[index] = (frame["type"], frame.get("code"))
                assert socket.wait_closed() == 4001

    threads = [threading.Thread(target=connect, args=(index,)) for index in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [expected for _, expected in cases]


def test_sync_answers_many_sessions_in_one_frame(public_server, active_session, make_mitra):
    mitra = make_mitra(capacity=3)
    mitra_set_online(mitra=mitra, is_online=True)
    first, first_client, _ = active_session(mitra=mitra)
    second, second_client, _ = active_session(mitra=mitra)
    elsewhere, _, _ = active_session()
    with Socket(public_server, first_client) as a, Socket(public_server, second_client) as b:
        a.expect_type("hello")
        b.expect_type("hello")
        for socket, session, count in ((a, first, 2), (b, second, 3)):
            for number in range(count):
                cmid = socket.send_message(session.id, f"pesan {number}")
                socket.expect_type("message.ack", client_msg_id=cmid)
    with Socket(public_server, mitra.user) as m:
        m.expect_type("hello")
        unknown = str(uuid.uuid4())
        m.send(
            {
                "type": "sync",
                "sessions": [
                    {"session_id": str(first.id), "after_seq": 0},
                    {"session_id": unknown, "after_seq": 0},
                    {"session_id": str(second.id), "after_seq": 1},
                    {"session_id": str(elsewhere.id), "after_seq": 0},
                ],
            }
        )
        frames = [m.recv() for _ in range(8)]
        summary = [
            (f["type"], f.get("session_id"), f.get("seq") or f.get("last_seq") or f.get("code"))
            for f in frames
        ]
        assert summary == [
            ("message.new", str(first.id), 1),
            ("message.new", str(first.id), 2),
            ("sync.done", str(first.id), 2),
            ("error", None, "session_not_found"),
            ("message.new", str(second.id), 2),
            ("message.new", str(second.id), 3),
            ("sync.done", str(second.id), 3),
            ("error", None, "session_not_found"),  # not a participant: not revealed
        ]
        assert frames[2]["has_more"] is False and frames[6]["session_last_seq"] == 3
        m.send({"type": "ping"})
        assert m.recv() == {"type": "pong"}  # nothing else was sent


def test_sync_refuses_a_bad_sessions_list(public_server, active_session):
    _, client, _ = active_session()
    with Socket(public_server, client) as c:
        c.expect_type("hello")
        for sessions in ([], "x", [1], [{"session_id": "nope", "after_seq": 0}], [{}] * 51):
            c.send(json.dumps({"type": "sync", "sessions": sessions}))
            error = c.expect_type("error")
            assert (error["code"], error["ref"]) == ("validation_error", "sync"), sessions
        c.send({"type": "ping"})
        assert c.expect_type("pong") == {"type": "pong"}


def test_sockets_opening_and_closing_at_once_share_one_registry_write_and_each_get_their_count():
    """The socket registry (real Valkey): what many sockets open and close in one loop turn goes
    to Valkey together, and each opening socket still gets the count the per-user cap needs."""
    import asyncio

    from sessions_app import realtime

    async def scenario():
        first = await asyncio.gather(
            *(realtime.socket_open_count(901, f"a{n}") for n in range(4)),
            realtime.socket_open_count(902, "b0"),
        )
        second = await asyncio.gather(
            realtime.socket_closed(901, "a0"),
            realtime.socket_closed(901, "a1"),
            realtime.socket_open_count(901, "a4"),
            realtime.socket_closed(902, "b0"),
        )
        after = [await realtime.has_open_socket(901), await realtime.has_open_socket(902)]
        await asyncio.gather(*(realtime.socket_closed(901, f"a{n}") for n in range(5)))
        return first, second, after, await realtime.has_open_socket(901)

    first, second, after, left = asyncio.run(scenario())
    assert first == [1, 2, 3, 4, 1]
    assert second == [None, None, 3, None]
    assert (after, left) == ([True, False], False)


@pytest.mark.django_db(transaction=True)
def test_batched_sync_gives_what_one_sync_at_a_time_gives(active_session, make_client_user, make_mitra):
    """`selectors.messages_replay_many` (on PostgreSQL one `unnest … LATERAL` statement, on SQLite
    the ORM's window) answers each request as `messages_replay` alone: several sessions, the same
    session from two positions, after the last seq, past the integer column, pages and has_more, a
    stranger, an unknown session, masked and purged bodies."""
    from sessions_app import chat_store, selectors, stored_message

    mitra = make_mitra(capacity=3)
    mitra_set_online(mitra=mitra, is_online=True)
    first, first_client, _ = active_session(mitra=mitra)
    second, second_client, _ = active_session(mitra=mitra)
    empty, empty_client, _ = active_session(mitra=mitra)
    for session, client, count in ((first, first_client, 5), (second, second_client, 3)):
        for number in range(count):
            chat_store._store_orm(
                session_id=str(session.id), sender=stored_message.Sender(user_id=client.id),
                body=f"pesan {number}", is_masked=number == 1, client_msg_id=f"c{number}",
            )  # fmt: skip
    Message.objects.filter(session=second, seq=2).update(body="", body_purged_at=timezone.now())
    stranger = make_client_user()
    requests = [
        (first_client.id, first.id, 0, 2),
        (mitra.user_id, first.id, 0, 2),
        (mitra.user_id, first.id, 3, 2),
        (first_client.id, first.id, 4, 200),
        (first_client.id, first.id, 5, 200),
        (first_client.id, first.id, 2**40, 200),
        (second_client.id, second.id, 0, 200),
        (empty_client.id, empty.id, 0, 200),
        (stranger.id, second.id, 0, 200),
        (first_client.id, uuid.uuid4(), 0, 200),
    ]

    def alone(user_id, session_id, after_seq, limit):
        try:
            return selectors.messages_replay(
                session_id=session_id, user_id=user_id, after_seq=after_seq, limit=limit
            )
        except Exception as exc:
            return type(exc)

    def shown(reply):
        if isinstance(reply, Exception):
            return type(reply)
        messages, has_more, last_seq = reply
        return [stored_message.message_frame(m) for m in messages], has_more, last_seq

    together = [shown(reply) for reply in selectors.messages_replay_many(requests)]
    one_by_one = [alone(*request) for request in requests]
    assert together == [r if isinstance(r, type) else shown(r) for r in one_by_one]
    seqs = [[f["seq"] for f in r[0]] if isinstance(r, tuple) else r for r in together]
    assert seqs[:8] == [[1, 2], [1, 2], [4, 5], [5], [], [], [1, 2, 3], []]
    assert [r[1] for r in together[:4]] == [True, True, False, False]
    assert together[0][0][1]["is_masked"] is True and together[0][0][0]["is_masked"] is False
    assert together[6][0][1]["body"] == ""  # purged: the body is gone, the seq is still replayed
    assert seqs[8:] == [NotParticipant, SessionNotFound]
