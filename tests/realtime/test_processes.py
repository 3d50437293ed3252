"""Several server processes sharing Redis: cross-process delivery, SIGTERM mid-chat (1012, reconnect
to the other process, sync), and a Redis restart during a chat (the layer watchdog)."""

import contextlib
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed

from sessions_app.models import Message
from tests.realtime.conftest import Socket
from tests.servers import ThrowawayValkey, server_env, uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)


def _chat(sender, receiver, session_id, body):
    cmid = sender.send_message(session_id, body)
    ack = sender.expect_type("message.ack", client_msg_id=cmid)
    new = receiver.expect_type("message.new", client_msg_id=cmid)
    assert new["seq"] == ack["seq"] and new["body"] == body
    return ack["seq"]


def test_it_delivers_between_two_processes_in_order(active_session, transactional_db, tmp_path):
    session, client, mitra = active_session()
    with (
        uvicorn_process("public", log_path=tmp_path / "a.log") as (_, server_a),
        uvicorn_process("public", log_path=tmp_path / "b.log") as (_, server_b),
        Socket(server_a, client) as c,
        Socket(server_b, mitra.user) as m,
    ):
        c.expect_type("hello")
        m.expect_type("hello")
        sent = []
        for number in range(30):
            sender, name = (c, "c") if number % 3 else (m, "m")
            cmid = sender.send_message(session.id, f"{name} {number}")
            sent.append((sender, cmid))
        for sender, cmid in sent:
            sender.expect_type("message.ack", client_msg_id=cmid)
        for receiver in (c, m):
            news = [receiver.expect_type("message.new") for _ in range(30)]
            # None lost, none doubled; each sender's messages arrive in their order. Two senders
            # publish from two processes, so their frames may interleave differently from seq:
            # the apps order by seq (docs/realtime.md).
            assert sorted(n["seq"] for n in news) == list(range(1, 31))
            for sender_id in (client.id, mitra.user_id):
                own = [n["seq"] for n in news if n["sender_id"] == sender_id]
                assert own == sorted(own)
    assert Message.objects.filter(session=session).count() == 30


def test_it_closes_with_1012_on_sigterm_and_the_app_resyncs_elsewhere(
    active_session, transactional_db, tmp_path
):
    session, client, mitra = active_session()
    with uvicorn_process("public", log_path=tmp_path / "b.log") as (_, server_b):
        with uvicorn_process("public", log_path=tmp_path / "a.log") as (process_a, server_a):
            c = Socket(server_a, client)
            m = Socket(server_b, mitra.user)
            c.expect_type("hello")
            m.expect_type("hello")
            acked = {}
            for number in range(10):
                acked[f"k{number}"] = _chat(c, m, session.id, f"sebelum {number}")
            # Mitra keeps writing while the client's process goes down.
            for number in range(5):
                cmid = m.send_message(session.id, f"selama {number}")
                acked[cmid] = m.expect_type("message.ack", client_msg_id=cmid)["seq"]
            process_a.send_signal(signal.SIGTERM)
            assert c.wait_closed() == 1012
            for number in range(5):
                cmid = m.send_message(session.id, f"sesudah {number}")
                acked[cmid] = m.expect_type("message.ack", client_msg_id=cmid)["seq"]
            process_a.wait(20)
        # The app reconnects to the other process and syncs from the last seq it saw.
        seen = {f["seq"]: f for f in c.pending if f["type"] == "message.new"}
        last_seen = max(seen) if seen else 0
        with Socket(server_b, client) as again:
            again.send({"type": "sync", "session_id": str(session.id), "after_seq": last_seen})
            while True:
                frame = again.expect(lambda f: f["type"] in ("message.new", "sync.done"))
                if frame["type"] == "sync.done":
                    break
                assert frame["seq"] not in seen
                seen[frame["seq"]] = frame
            assert sorted(seen) == list(range(1, 21))
            assert sorted(acked.values()) == list(range(1, 21))
            assert _chat(again, m, session.id, "lanjut") == 21
        m.close()


@pytest.fixture
def throwaway_redis(tmp_path):
    server = ThrowawayValkey(tmp_path)
    server.start()
    yield server
    server.stop()


def test_it_recovers_from_a_redis_restart_without_losing_an_acked_message(
    active_session, transactional_db, tmp_path, throwaway_redis
):
    session, client, mitra = active_session()
    env = server_env(VALKEY_URL=throwaway_redis.url)
    with (
        uvicorn_process("public", env=env, log_path=tmp_path / "a.log") as (_, server_a),
        uvicorn_process("public", env=env, log_path=tmp_path / "b.log") as (_, server_b),
    ):
        c = Socket(server_a, client)
        m = Socket(server_b, mitra.user)
        c.expect_type("hello")
        m.expect_type("hello")
        acked = set()
        for number in range(5):
            acked.add(_chat(c, m, session.id, f"sebelum {number}"))
        seen = set(acked)  # the mitra got these live (_chat checked)
        throwaway_redis.stop()
        # While Redis is down, sends are still stored and acked (Postgres is the truth).
        cmid = c.send_message(session.id, "saat redis mati")
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            acked.add(c.expect_type("message.ack", client_msg_id=cmid, timeout=5)["seq"])
        throwaway_redis.start()
        # The watchdog closed the sockets with 1012; the apps reconnect (retrying) and sync.
        assert c.wait_closed(timeout=20) == 1012
        assert m.wait_closed(timeout=20) == 1012
        seen |= {f["seq"] for f in m.pending if f["type"] == "message.new"}

        def reconnect(base_url, user):
            deadline = time.monotonic() + 20
            while True:
                socket = Socket(base_url, user)
                try:
                    socket.expect_type("hello", timeout=3)
                    return socket
                except (TimeoutError, ConnectionClosed):
                    socket.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

        c = reconnect(server_a, client)
        m = reconnect(server_b, mitra.user)
        m.send({"type": "sync", "session_id": str(session.id), "after_seq": max(seen)})
        while True:
            frame = m.expect(lambda f: f["type"] in ("message.new", "sync.done"))
            if frame["type"] == "sync.done":
                break
            seen.add(frame["seq"])
        assert acked <= seen
        # And live chat flows again across the two processes.
        next_seq = _chat(c, m, session.id, "sudah pulih")
        assert _chat(m, c, session.id, "iya") == next_seq + 1
        c.close()
        m.close()
    assert sorted(Message.objects.filter(session=session).values_list("seq", flat=True)) == list(
        range(1, next_seq + 2)
    )
