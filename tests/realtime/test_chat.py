"""Chat over /ws/v1/ on a real server process: delivery, acks, idempotent resends, sync, typing,
read receipts, who may send."""

import uuid
from datetime import timedelta

import pytest

from sessions_app.models import ChatSession, Message
from tests.realtime.conftest import Socket, end_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_delivers_messages_both_ways_with_acks_and_seq(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        cmid = c.send_message(session.id, "halo kak")
        ack = c.expect_type("message.ack", client_msg_id=cmid)
        assert ack["seq"] == 1 and ack["session_id"] == str(session.id)
        new = m.expect_type("message.new", client_msg_id=cmid)
        assert (new["seq"], new["body"], new["sender_id"], new["kind"], new["is_masked"]) == (
            1,
            "halo kak",
            client.id,
            "text",
            False,
        )
        assert new["id"] == ack["id"]
        reply = m.send_message(session.id, "halo juga")
        assert m.expect_type("message.ack", client_msg_id=reply)["seq"] == 2
        assert c.expect_type("message.new", client_msg_id=reply)["body"] == "halo juga"
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "body")) == [
        (1, "halo kak"),
        (2, "halo juga"),
    ]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2


def test_it_answers_a_resend_with_the_same_ack_and_stores_nothing_new(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        cmid = c.send_message(session.id, "sekali saja")
        first = c.expect_type("message.ack", client_msg_id=cmid)
        c.send_message(session.id, "sekali saja", client_msg_id=cmid)
        second = c.expect_type("message.ack", client_msg_id=cmid)
        assert first == second
        m.expect_type("message.new", client_msg_id=cmid)
        # The resend stays quiet: one message.new per socket, none for the resend (ping-pong
        # fences it: the broadcast would have come before the pong).
        for sock, already_read in ((m, 1), (c, 0)):
            sock.send({"type": "ping"})
            sock.expect_type("pong")
            news = [f for f in sock.pending if f["type"] == "message.new" and f["client_msg_id"] == cmid]
            assert len(news) + already_read == 1
    assert Message.objects.filter(session=session).count() == 1
    assert ChatSession.objects.get(pk=session.pk).last_seq == 1


def test_it_refuses_a_stranger_and_keeps_the_socket(public_server, active_session, make_client_user):
    session, client, mitra = active_session()
    stranger = make_client_user()
    unknown = uuid.uuid4()
    with Socket(public_server, stranger) as s:
        # No existence oracle: a stranger's session is answered exactly like an unknown one.
        for session_id in (session.id, unknown):
            s.send_message(session_id, "numpang", client_msg_id="probe")
            error = s.expect_type("error")
            assert error == {"type": "error", "code": "session_not_found", "detail": "Sesi tidak ditemukan.",
                             "ref": "probe"}  # fmt: skip
            for frame in (
                {"type": "typing", "session_id": str(session_id), "is_typing": True},
                {"type": "sync", "session_id": str(session_id), "after_seq": 0},
                {"type": "read", "session_id": str(session_id), "up_to_seq": 0},
            ):
                s.send(frame)
                assert s.expect_type("error") == {
                    "type": "error", "code": "session_not_found", "detail": "Sesi tidak ditemukan.",
                    "ref": frame["type"],
                }  # fmt: skip
        s.send({"type": "ping"})
        assert s.expect_type("pong") == {"type": "pong"}
    assert Message.objects.filter(session=session).count() == 0
    assert ChatSession.objects.get(pk=session.pk).last_seq == 0


def test_it_makes_an_ended_session_read_only(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c:
        cmid = c.send_message(session.id, "sebelum selesai")
        c.expect_type("message.ack", client_msg_id=cmid)
        end_session(session, client)
        later = c.send_message(session.id, "sesudah selesai")
        error = c.expect_type("error")
        assert (error["code"], error["ref"]) == ("session_not_active", later)
        # A resend of what was stored before the end still gets its ack.
        c.send_message(session.id, "sebelum selesai", client_msg_id=cmid)
        assert c.expect_type("message.ack", client_msg_id=cmid)["seq"] == 1
        c.send({"type": "sync", "session_id": str(session.id), "after_seq": 0})
        assert c.expect_type("message.new")["body"] == "sebelum selesai"
        done = c.expect_type("sync.done")
        assert (done["last_seq"], done["has_more"]) == (1, False)
    assert list(Message.objects.filter(session=session).values_list("body", flat=True)) == ["sebelum selesai"]


def test_it_syncs_in_seq_order_after_a_given_seq(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c:
        for number in range(1, 6):
            cmid = c.send_message(session.id, f"pesan {number}")
            c.expect_type("message.ack", client_msg_id=cmid)
    with Socket(public_server, mitra.user) as m:
        m.send({"type": "sync", "session_id": str(session.id), "after_seq": 2})
        frames = [m.expect(lambda f: f["type"] in ("message.new", "sync.done")) for _ in range(4)]
    assert [(f["type"], f.get("seq"), f.get("body")) for f in frames] == [
        ("message.new", 3, "pesan 3"),
        ("message.new", 4, "pesan 4"),
        ("message.new", 5, "pesan 5"),
        ("sync.done", None, None),
    ]
    assert (frames[-1]["last_seq"], frames[-1]["has_more"]) == (5, False)


def test_it_forwards_typing_and_read_receipts_to_the_other_side_only(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        c.send({"type": "typing", "session_id": str(session.id), "is_typing": True})
        typing = m.expect_type("typing")
        assert typing == {
            "type": "typing",
            "session_id": str(session.id),
            "user_id": client.id,
            "is_typing": True,
        }
        cmid = c.send_message(session.id, "dibaca ya")
        m.expect_type("message.new", client_msg_id=cmid)
        m.send({"type": "read", "session_id": str(session.id), "up_to_seq": 99})
        read = c.expect_type("read")
        assert read == {
            "type": "read",
            "session_id": str(session.id),
            "user_id": mitra.user_id,
            "up_to_seq": 1,
        }
        c.send({"type": "ping"})
        c.expect_type("pong")
        assert not [f for f in c.pending if f["type"] == "typing"]
    stored = ChatSession.objects.get(pk=session.pk)
    assert (stored.mitra_read_seq, stored.client_read_seq) == (1, 0)


def test_it_masks_contact_details_and_notices_the_sender(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        cmid = c.send_message(session.id, "wa aku 0812-3456-7890 atau @halo_kak")
        ack = c.expect_type("message.ack", client_msg_id=cmid)
        assert ack["is_masked"] is True
        notice = c.expect_type("message.masked")
        assert notice["client_msg_id"] == cmid
        new = m.expect_type("message.new", client_msg_id=cmid)
        assert (new["body"], new["is_masked"]) == ("wa aku [disembunyikan] atau [disembunyikan]", True)
    stored = Message.objects.get(session=session)
    assert (stored.body, stored.is_masked) == ("wa aku [disembunyikan] atau [disembunyikan]", True)


def test_it_flags_a_crisis_and_sends_the_hotline_as_a_system_message(public_server, active_session):
    from halobestie.runtime.selectors import get_config

    session, client, mitra = active_session()
    ends_at = session.ends_at
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        cmid = c.send_message(session.id, "Aku rasanya pengeeen m4t1 aja")
        assert c.expect_type("message.ack", client_msg_id=cmid)["seq"] == 1
        system = c.expect(lambda f: f["type"] == "message.new" and f["kind"] == "system")
        assert (system["seq"], system["body"], system["sender_id"]) == (2, get_config().hotline_text, None)
        assert m.expect(lambda f: f["type"] == "message.new" and f["kind"] == "system")["seq"] == 2
        # The free minutes reach both sides as a session update.
        updated = c.expect(
            lambda f: f["type"] == "session.updated" and f["session"]["extended_seconds"] == 600
        )
        assert updated["session"]["extensions_total_idr"] == 0
    stored = ChatSession.objects.get(pk=session.pk)
    assert stored.is_flagged is True and stored.flagged_at is not None
    assert (stored.needs_staff_attention, stored.crisis_followup_pending) == (True, False)
    assert (stored.crisis_extension_seconds, stored.extended_seconds, stored.extensions_total_idr) == (
        600,
        600,
        0,
    )
    assert stored.ends_at - ends_at == timedelta(minutes=10)
    assert list(stored.events.filter(kind="crisis_flagged").values_list("data", flat=True)) == [
        {"message_id": Message.objects.get(session=session, seq=1).id, "source": "client"}
    ]


def test_it_does_not_flag_harmless_words_from_either_side(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        cmid = c.send_message(session.id, "tadi mati lampu, capek banget sama tugas")
        c.expect_type("message.ack", client_msg_id=cmid)
        cmid = m.send_message(session.id, "wah, semoga listriknya cepat nyala ya")
        m.expect_type("message.ack", client_msg_id=cmid)
        c.expect_type("message.new", client_msg_id=cmid)
    stored = ChatSession.objects.get(pk=session.pk)
    assert (stored.is_flagged, stored.needs_staff_attention, stored.extended_seconds) == (False, False, 0)
    assert Message.objects.filter(session=session, kind="system").count() == 0


def test_it_alerts_staff_when_a_bestie_sees_the_client_in_danger(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        cmid = m.send_message(session.id, "Kamu aman sekarang? Tolong jauhkan benda tajam dulu ya")
        m.expect_type("message.ack", client_msg_id=cmid)
        c.expect_type("message.new", client_msg_id=cmid)
        c.expect(lambda f: f["type"] == "session.updated" and f["session"]["extended_seconds"] == 600)
    stored = ChatSession.objects.get(pk=session.pk)
    assert (stored.is_flagged, stored.needs_staff_attention, stored.crisis_extension_seconds) == (
        True,
        True,
        600,
    )
    assert list(stored.events.filter(kind="crisis_flagged").values_list("data", flat=True)) == [
        {"message_id": Message.objects.get(session=session, seq=1).id, "source": "mitra"}
    ]
    # The Bestie is already with the client: no hotline message from a Bestie's words.
    assert Message.objects.filter(session=session, kind="system").count() == 0


def test_it_masks_a_besties_contact_details_and_notices_the_bestie(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        body = "chat aku di wa.me/6281234567890 atau nol delapan satu satu dua dua tiga tiga empat empat"
        cmid = m.send_message(session.id, body)
        ack = m.expect_type("message.ack", client_msg_id=cmid)
        assert ack["is_masked"] is True
        notice = m.expect_type("message.masked")
        assert (notice["client_msg_id"], notice["session_id"]) == (cmid, str(session.id))
        new = c.expect_type("message.new", client_msg_id=cmid)
        assert (new["body"], new["is_masked"]) == ("chat aku di [disembunyikan] atau [disembunyikan]", True)
        assert not [f for f in c.pending if f["type"] == "message.masked"]
    stored = Message.objects.get(session=session)
    assert (stored.body, stored.is_masked, stored.sender_id) == (
        "chat aku di [disembunyikan] atau [disembunyikan]",
        True,
        mitra.user_id,
    )


def test_it_answers_a_mitra_heartbeat(public_server, active_session, valkey):
    session, client, mitra = active_session()
    with Socket(public_server, mitra.user) as m, Socket(public_server, client) as c:
        m.send({"type": "heartbeat"})
        assert "at" in m.expect_type("heartbeat.ack")
        c.send({"type": "heartbeat"})
        assert c.expect_type("heartbeat.ack") == {"type": "heartbeat.ack"}
    from mitras.selectors import last_heartbeats

    assert last_heartbeats([mitra])[mitra.id] is not None


def test_it_closes_a_deactivated_mitras_socket_with_4003(public_server, active_session):
    from halobestie.accounts.models import User
    from mitras.services import mitra_deactivate

    session, client, mitra = active_session()
    staff = User.objects.create_superuser("staf@halobestie.local", "rahasia-staf-123")
    with Socket(public_server, mitra.user) as m:
        m.expect_type("hello")
        mitra_deactivate(mitra=mitra, actor=staff)
        assert m.wait_closed() == 4003
    assert [f["code"] for f in m.pending if f["type"] == "error"] == ["account_deactivated"]


def test_it_delivers_a_staff_message_live_to_both_sides_with_its_seq(
    public_server, active_session, make_staff
):
    from sessions_app import handoff

    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        cmid = c.send_message(session.id, "halo kak")
        c.expect_type("message.ack", client_msg_id=cmid)
        handoff.staff_message_post(session_id=session.id, actor=make_staff("support"), text="Kami di sini.")
        for socket in (c, m):
            frame = socket.expect(lambda f: f["type"] == "message.new" and f["kind"] == "system")
            assert (frame["seq"], frame["body"], frame["sender_id"]) == (
                2,
                "Tim HaloBestie: Kami di sini.",
                None,
            )
