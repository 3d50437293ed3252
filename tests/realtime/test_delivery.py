"""Delivering channel-layer frames to a socket (issue 22, "chat past the relay"): a chat message
is written by the layer's callback itself when the socket is free (sessions_app/consumers.py,
`_wrote_now`), otherwise queued behind the frame the socket's consumer is handling. Either way:
in order, exactly once, counted the same, and quiet when the socket goes away meanwhile.

Through the production launcher (`python -m halobestie.serve`: LeanWebSocketProtocol offers the
synchronous writer); tests/realtime's plain `uvicorn` servers cover the path without it."""

import contextlib
import json
import time

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sessions_app.models import ChatSession
from tests.servers import free_port, serve_process, server_env, wait_for_lock_waiter

from .conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)

# Back-to-back sends within the limits (the limits are not under test here).
UNLIMITED = {
    "REALTIME_MESSAGES_PER_SECOND": "10000",
    "REALTIME_MESSAGES_BURST": "10000",
    "REALTIME_FRAMES_PER_SECOND": "10000",
    "REALTIME_FRAMES_BURST": "10000",
}


@contextlib.contextmanager
def _row_locked(database_url, session_id):
    """The session's row locked by a transaction of the test's own while the block runs: a
    message sent in that session waits for it (its handler holds the socket busy)."""
    blocker = psycopg.connect(database_url)
    try:
        table = ChatSession._meta.db_table
        blocker.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [str(session_id)])
        yield
    finally:
        blocker.rollback()
        blocker.close()


def _delivery_count(metrics_url):
    text = requests.get(f"{metrics_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "halobestie_chat_message_delivery_seconds_count":
                return sample.value
    return 0.0


def _trouble(log_path):
    """Log lines at WARNING or above, and tracebacks, of a server's JSON log."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                found.append(line)
            continue
        if record.get("level", "").upper() in ("WARNING", "ERROR", "CRITICAL") or record.get("exc_info"):
            found.append(line)
    return found


def test_messages_arrive_in_order_exactly_once_and_are_counted_as_before(active_session, tmp_path):
    session, client, mitra = active_session()
    metrics_port = free_port()
    log_path = tmp_path / "public.log"
    env = server_env(METRICS_PORT=metrics_port, METRICS_HOST="127.0.0.1", **UNLIMITED)
    with (
        serve_process("public", env=env, log_path=log_path) as (_, base_url),
        Socket(base_url, client) as c,
        Socket(base_url, mitra.user) as m,
        Socket(base_url, mitra.user) as m2,  # the mitra's second device
    ):
        for ws in (c, m, m2):
            ws.expect_type("hello")
        sent = [c.send_message(session.id, f"pesan {number}") for number in range(40)]
        acks = [c.expect_type("message.ack", client_msg_id=cmid)["seq"] for cmid in sent]
        assert acks == list(range(1, 41))
        for ws in (m, m2, c):  # the sender's own socket gets the echo of each
            news = [ws.expect_type("message.new", timeout=15) for _ in sent]
            assert [(n["client_msg_id"], n["seq"]) for n in news] == list(zip(sent, acks, strict=True))
        # Then the mitra answers: each of the client's messages was delivered once, not twice.
        answer = m.send_message(session.id, "iya, aku dengar")
        m.expect_type("message.ack", client_msg_id=answer)
        assert c.expect_type("message.new")["client_msg_id"] == answer
        assert m.expect_type("message.new")["client_msg_id"] == answer
        assert m2.expect_type("message.new")["client_msg_id"] == answer
        for ws in (c, m, m2):
            ws.send({"type": "ping"})
            ws.expect_type("pong")
            assert [f for f in ws.pending if f["type"] == "message.new"] == []
        # Timed once per recipient socket (two mitra devices × 40, the client × 1); never for
        # the sender's own echo (to the sending socket or to the sender's other device).
        assert _delivery_count(f"http://127.0.0.1:{metrics_port}") == 81.0
    assert _trouble(log_path) == []


def test_messages_keep_their_place_among_frames_of_other_types(active_session, tmp_path):
    """`typing` and `read` frames take the queued path; the messages published after them go
    out after them, not past them."""
    session, client, mitra = active_session()
    log_path = tmp_path / "public.log"
    with (
        serve_process("public", env=server_env(**UNLIMITED), log_path=log_path) as (_, base_url),
        Socket(base_url, client) as c,
        Socket(base_url, mitra.user) as m,
    ):
        c.expect_type("hello")
        m.expect_type("hello")
        expected = []
        for number in range(10):
            m.send({"type": "typing", "session_id": str(session.id), "is_typing": True})
            cmid = m.send_message(session.id, f"balasan {number}")
            expected += [("typing", None), ("message.new", cmid)]
        m.expect_type("message.ack", client_msg_id=cmid)
        c.send({"type": "read", "session_id": str(session.id), "up_to_seq": 10})
        for number in range(3):
            expected.append(("message.new", m.send_message(session.id, f"lagi {number}")))
        received = [c.recv(timeout=15) for _ in range(len(expected) - 3)]
        received += [c.expect_type("message.new", timeout=15) for _ in range(3)]
        assert [(f["type"], f.get("client_msg_id")) for f in received] == expected
        assert m.expect_type("read")["up_to_seq"] == 10
    assert _trouble(log_path) == []


def test_frames_for_a_busy_socket_wait_behind_what_it_handles_in_order(
    active_session, make_client_user, tmp_path
):
    """The mitra's socket is handling its own message, held up in PostgreSQL; meanwhile another
    process publishes a client's messages to it: none is written before the handler's ack, and
    then all of them, in order, once."""
    first, client, mitra = active_session()
    second, other_client, _ = active_session(client=make_client_user(), mitra=mitra)
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    database_url = server_env()["DATABASE_URL"]
    with (
        serve_process("public", env=server_env(**UNLIMITED), log_path=a_log) as (_, server_a),
        serve_process("public", env=server_env(**UNLIMITED), log_path=b_log) as (_, server_b),
        Socket(server_a, client) as c,
        Socket(server_b, mitra.user) as m,
    ):
        c.expect_type("hello")
        m.expect_type("hello")
        with _row_locked(database_url, second.id):
            held = m.send_message(second.id, "pesan yang tertahan")
            wait_for_lock_waiter(database_url)
            sent = [c.send_message(first.id, f"pesan {number}") for number in range(10)]
            for cmid in sent:
                c.expect_type("message.ack", client_msg_id=cmid)
            time.sleep(0.3)  # published and arrived at the mitra's process by now
            with pytest.raises(TimeoutError):
                m.recv(timeout=0.5)
        first_frame = m.recv(timeout=15)
        frames = [m.recv(timeout=15) for _ in range(len(sent) + 1)]
    # The handler's answer first, then what waited, in the order it was published, once; the
    # echo of the held message comes after its ack too.
    assert (first_frame["type"], first_frame["client_msg_id"]) == ("message.ack", held)
    assert [(f["type"], f["session_id"]) for f in frames if f["client_msg_id"] == held] == [
        ("message.new", str(second.id))
    ]
    assert [f["client_msg_id"] for f in frames if f["client_msg_id"] != held] == sent
    assert _trouble(a_log) == [] and _trouble(b_log) == []


def test_a_socket_going_away_while_messages_arrive_leaves_no_error(active_session, tmp_path):
    """One mitra socket closes cleanly mid-stream, another is cut (no close frame): the
    deliveries to them stop quietly, the other sockets go on getting every message."""
    session, client, mitra = active_session()
    log_path = tmp_path / "public.log"
    with (
        serve_process("public", env=server_env(**UNLIMITED), log_path=log_path) as (_, base_url),
        Socket(base_url, client) as c,
        Socket(base_url, mitra.user) as m,
    ):
        leaving, cut = Socket(base_url, mitra.user), Socket(base_url, mitra.user)
        for ws in (c, m, leaving, cut):
            ws.expect_type("hello")
        sent = [c.send_message(session.id, f"pesan {number}") for number in range(60)]
        leaving.expect_type("message.new")
        cut.expect_type("message.new")
        leaving.close()
        cut.ws.socket.close()  # the app's connection is gone without a goodbye
        for cmid in sent:
            c.expect_type("message.ack", client_msg_id=cmid)
        assert [m.expect_type("message.new")["client_msg_id"] for _ in sent] == sent
        # The process goes on serving new sockets (nothing broke in the layer's receive loop).
        with Socket(base_url, mitra.user) as again:
            again.expect_type("hello")
            answer = again.send_message(session.id, "masih di sini")
            again.expect_type("message.ack", client_msg_id=answer)
            assert c.expect_type("message.new", client_msg_id=answer)["body"] == "masih di sini"
    assert _trouble(log_path) == []


def test_a_busy_socket_whose_queue_overflows_is_closed_with_1013(active_session, make_client_user, tmp_path):
    """The queued path's bound still holds beside the fast path (REALTIME_SOCKET_QUEUE)."""
    first, client, mitra = active_session()
    second, _, _ = active_session(client=make_client_user(), mitra=mitra)
    b_log = tmp_path / "b.log"
    database_url = server_env()["DATABASE_URL"]
    with (
        serve_process("public", env=server_env(**UNLIMITED), log_path=tmp_path / "a.log") as (_, server_a),
        serve_process("public", env=server_env(REALTIME_SOCKET_QUEUE="3", **UNLIMITED), log_path=b_log) as (
            _,
            server_b,
        ),
        Socket(server_a, client) as c,
        Socket(server_b, mitra.user) as m,
    ):
        c.expect_type("hello")
        m.expect_type("hello")
        with _row_locked(database_url, second.id):
            m.send_message(second.id, "pesan yang tertahan")
            wait_for_lock_waiter(database_url)
            for number in range(8):
                c.expect_type("message.ack", client_msg_id=c.send_message(first.id, f"pesan {number}"))
            assert m.wait_closed() == 1013
        # The app reconnects and syncs: every acked message is there.
        with Socket(server_b, mitra.user) as again:
            again.expect_type("hello")
            again.send({"type": "sync", "session_id": str(first.id), "after_seq": 0})
            done = again.expect_type("sync.done")
            assert done["last_seq"] == 8
        time.sleep(0.5)  # the held message's handler and the queued frames finish meanwhile
    assert [line for line in _trouble(b_log) if "socket queue full" not in line] == []
