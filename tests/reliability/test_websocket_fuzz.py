"""The WebSocket under hostile input, against a live server: hypothesis-generated frames (random
text, binary, JSON of every known type with random fields, oversized frames, other people's
session ids) never crash the consumer or disturb other sockets; a second pair of sockets keeps
chatting through it all and receives every message. Message floods are rate limited, oversized
frames and bodies refused with their codes, and the socket stays usable."""

import json
import string
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from sessions_app.models import Message
from tests.realtime.conftest import Socket, active_session, public_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

TYPES = ["message.send", "typing", "read", "sync", "heartbeat", "ping", "session.offer", "", "x" * 100]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def frames(victim_session_id):
    known_fields = st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "session_id": st.sampled_from([victim_session_id, "bukan-uuid", "", None, 7])
            | st.uuids().map(str),
            "client_msg_id": st.text(max_size=80) | json_values,
            "body": st.text(max_size=300) | json_values,
            "after_seq": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
            "up_to_seq": st.integers() | json_values,
            "is_typing": json_values,
        },
    )
    return st.one_of(
        known_fields.map(json.dumps),
        json_values.map(json.dumps),
        st.text(alphabet=string.printable + "\x00\ufffd😀", max_size=200),
        st.binary(max_size=200),
        st.just("{" * 5000),
        st.just(json.dumps({"type": "message.send", "body": "x" * 30_000})),
    )


def _chat(sender, receiver, session_id, body):
    cmid = sender.send_message(session_id, body)
    ack = sender.expect_type("message.ack", client_msg_id=cmid)
    new = receiver.expect_type("message.new", client_msg_id=cmid)
    assert (new["seq"], new["body"]) == (ack["seq"], body)
    return ack["seq"]


@pytest.mark.parametrize(
    "examples", [pytest.param(120, id="quick"), pytest.param(3000, id="soak", marks=pytest.mark.soak)]
)
def test_it_survives_random_frames_while_others_keep_chatting(
    public_server,  # noqa: F811
    active_session,  # noqa: F811
    make_client_user,
    tmp_path,
    examples,
):
    session, client, mitra = active_session()
    stranger = make_client_user()
    c, m = Socket(public_server, client), Socket(public_server, mitra.user)
    c.expect_type("hello")
    m.expect_type("hello")
    state = {
        "attacker": Socket(public_server, stranger),
        "sent": 0,
        "reconnects": 0,
        "codes": set(),
        "chatted_at": 0.0,
    }
    seqs = []

    @hypothesis_settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(frame=frames(str(session.id)))
    def attack(frame):
        try:
            state["attacker"].ws.send(frame)
        except ConnectionClosed as exc:
            # Only a protocol-level close is acceptable (an oversized or invalid frame), never 1011.
            assert exc.rcvd is None or exc.rcvd.code != 1011
            state["reconnects"] += 1
            state["attacker"] = Socket(public_server, stranger)
        state["sent"] += 1
        # Every 10 frames, and no faster than the chatting client's own rate limit (5/s) allows.
        if state["sent"] % 10 == 0 and time.monotonic() - state["chatted_at"] > 0.25:
            state["chatted_at"] = time.monotonic()
            seqs.append(_chat(c, m, session.id, f"tetap jalan {state['sent']}"))

    attack()
    time.sleep(0.5)
    # The attacker only ever got error frames and pongs, never someone else's message.
    attacker = state["attacker"]
    try:
        while True:
            frame = json.loads(attacker.ws.recv(timeout=0.5))
            attacker.pending.append(frame)
    except (TimeoutError, ConnectionClosed):
        pass
    for frame in attacker.pending:
        assert frame["type"] in ("hello", "error", "pong", "heartbeat.ack", "sync.done"), frame
        if frame["type"] == "error":
            state["codes"].add(frame["code"])
            assert frame["code"] != "server_error", frame
    seqs.append(_chat(m, c, session.id, "masih di sini"))
    print(
        f"\nwebsocket fuzz: {state['sent']} frames, {state['reconnects']} reconnects, "
        f"codes {sorted(state['codes'])}"
    )

    assert seqs == list(range(1, len(seqs) + 1))
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)) == seqs
    assert "Traceback" not in (tmp_path / "public.log").read_text()


def test_it_rate_limits_a_message_flood_and_loses_none_it_acked(public_server, active_session):  # noqa: F811
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        sent = [c.send_message(session.id, f"banjir {n}") for n in range(60)]
        answers = {}
        while len(answers) < len(sent):
            frame = c.expect(lambda f: f["type"] in ("message.ack", "error"))
            answers[frame.get("client_msg_id") or frame.get("ref")] = frame
        acked = [cmid for cmid in sent if answers[cmid]["type"] == "message.ack"]
        limited = [cmid for cmid in sent if answers[cmid]["type"] == "error"]
        received = [m.expect_type("message.new")["client_msg_id"] for _ in acked]
        # The socket is still usable after the flood, once the bucket refills.
        time.sleep(1.5)
        last = c.send_message(session.id, "sudah tenang")
        c.expect_type("message.ack", client_msg_id=last)

    assert {answers[cmid]["code"] for cmid in limited} == {"rate_limited"}
    assert 20 <= len(acked) < 60  # the burst, plus what the rate refilled meanwhile
    assert received == acked
    assert Message.objects.filter(session=session).count() == len(acked) + 1


def test_it_refuses_oversized_frames_and_bodies_and_keeps_the_socket(public_server, active_session):  # noqa: F811
    session, client, mitra = active_session()
    with Socket(public_server, client) as c:
        c.expect_type("hello")
        c.send(
            {
                "type": "message.send",
                "session_id": str(session.id),
                "client_msg_id": "besar",
                "body": "x" * 30_000,
            }
        )
        too_large = c.expect_type("error")
        c.send_message(session.id, "y" * 5000, client_msg_id="panjang")
        too_long = c.expect_type("error")
        ok = c.send_message(session.id, "ukuran wajar")
        c.expect_type("message.ack", client_msg_id=ok)

    assert too_large["code"] == "frame_too_large"
    assert (too_long["code"], too_long["ref"]) == ("body_too_long", "panjang")
    assert list(Message.objects.filter(session=session).values_list("body", flat=True)) == ["ukuran wajar"]
