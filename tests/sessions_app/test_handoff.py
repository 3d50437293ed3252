"""Warm handoff: a crisis flag waits for staff, who acknowledge it (audited, with a note) and can
write into the session as Tim HaloBestie (audited); the client gets free minutes once, the
Bestie's earnings do not change."""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync

from halobestie.audit.models import AuditEntry
from halobestie.errors import Forbidden
from halobestie.runtime.selectors import get_config
from sessions_app import chat_store, handoff, lifecycle, stored_message
from sessions_app.models import ChatSession, EarningsEntry, Message, SessionEvent


@pytest.fixture
def active(paid_session, online_mitra):
    def make():
        mitra = online_mitra()
        session = paid_session(mitra=mitra, allow_any_mitra=False)
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        return ChatSession.objects.get(pk=session.id), mitra

    return make


def send(session, user, body, mitra=None):
    """chat.message_send, the service the socket calls, then the follow-up the socket starts."""

    async def run():
        try:
            return await chat_store.message_send(
                session_id=session.id,
                sender=stored_message.Sender(user_id=user.id, mitra_id=mitra.id if mitra else None),
                body=body,
                client_msg_id=uuid.uuid4().hex,
            )
        finally:
            await chat_store.close_pools()

    stored = async_to_sync(run)()
    if stored.crisis_source:
        handoff.crisis_followup(session_id=session.id)
    return stored


def test_it_marks_a_flagged_session_for_staff_until_acknowledged_with_an_audited_note(active, make_staff):
    session, mitra = active()
    stored = send(session, session.client, "aku capek hidup, pengen udahan aja")
    assert [a["session_id"] for a in handoff.attention_list()] == [str(session.id)]
    assert handoff.attention_list()[0]["source"] == "client"

    support = make_staff("support")
    handoff.attention_acknowledge(
        session_id=session.id, actor=support, note="Saya pantau, Bestie sudah dihubungi."
    )
    session.refresh_from_db()
    assert (session.is_flagged, session.needs_staff_attention) == (True, False)
    assert handoff.attention_list() == []
    event = SessionEvent.objects.get(session=session, kind="crisis_acknowledged")
    assert (event.actor, event.data) == (support, {"note": "Saya pantau, Bestie sudah dihubungi."})
    entry = AuditEntry.objects.get(action="acknowledge_crisis")
    assert (entry.actor, entry.object_type, entry.object_id) == (
        support,
        "sessions_app.chatsession",
        str(session.id),
    )
    assert entry.after == {"needs_staff_attention": False, "note": "Saya pantau, Bestie sudah dihubungi."}

    # A new crisis message asks for staff again; the free minutes are not granted twice.
    send(session, session.client, "kak aku beneran pengen mati")
    session.refresh_from_db()
    assert (session.needs_staff_attention, session.crisis_extension_seconds, session.extended_seconds) == (
        True, 600, 600,
    )  # fmt: skip
    assert stored.crisis_words == ("capek hidup",)


def test_it_refuses_staff_without_the_crisis_permission_and_changes_nothing(active, make_staff):
    session, _ = active()
    send(session, session.client, "gak kuat lagi, mau bundir")
    finance = make_staff("finance")
    with pytest.raises(Forbidden):
        handoff.attention_acknowledge(session_id=session.id, actor=finance, note="x")
    with pytest.raises(Forbidden):
        handoff.staff_message_post(session_id=session.id, actor=finance, text="x")
    session.refresh_from_db()
    assert session.needs_staff_attention is True
    assert not AuditEntry.objects.exists()
    assert Message.objects.filter(session=session).count() == 2  # the message and the hotline


def test_it_posts_a_staff_message_with_its_own_seq_and_audits_it(active, make_staff):
    session, _ = active()
    send(session, session.client, "halo kak")
    support = make_staff("support")
    message = handoff.staff_message_post(
        session_id=session.id, actor=support, text="Kami di sini bersama kalian. Bestie tetap menemanimu."
    )
    assert (message.seq, message.kind, message.sender_id) == (2, "system", None)
    assert message.body == "Tim HaloBestie: Kami di sini bersama kalian. Bestie tetap menemanimu."
    entry = AuditEntry.objects.get(action="staff_message")
    assert (entry.actor, entry.object_id) == (support, str(session.id))
    assert entry.after == {
        "message_id": message.id, "seq": 2, "text": "Kami di sini bersama kalian. Bestie tetap menemanimu.",
    }  # fmt: skip
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2


def test_it_gives_free_minutes_once_and_leaves_the_earnings_unchanged(active):
    session, mitra = active()
    ends_at = session.ends_at
    send(session, session.client, "aku pengen mati")
    send(session, mitra.user, "kamu aman sekarang? jauhkan benda tajam ya", mitra=mitra)
    session.refresh_from_db()
    assert (
        session.ends_at - ends_at
        == timedelta(minutes=get_config().crisis_free_minutes)
        == timedelta(minutes=10)
    )
    assert (session.extended_seconds, session.extensions_total_idr, session.crisis_extension_seconds) == (
        600,
        0,
        600,
    )
    assert list(
        SessionEvent.objects.filter(session=session, kind="extended").values_list("data", flat=True)
    ) == [{"seconds": 600, "amount_idr": 0, "reason": "crisis"}]
    lifecycle.session_end(session_id=session.id, actor=session.client)
    assert EarningsEntry.objects.get(session=session).amount_idr == session.price_idr * 70 // 100


def test_it_acknowledges_and_writes_from_the_control_center(active, make_staff, internal_client):
    session, _ = active()
    send(session, session.client, "aku udah siapin tali buat gantung diri")
    internal_client.force_login(make_staff("support"))
    alerts = internal_client.get("/admin/sessions_app/chatsession/alerts.json").json()
    assert [(a["session_id"], a["source"]) for a in alerts["sessions"]] == [(str(session.id), "client")]
    url = alerts["sessions"][0]["handoff_url"]
    assert internal_client.get(url).status_code == 200
    response = internal_client.post(url, {"action": "acknowledge", "note": "Ditangani oleh shift malam."})
    assert response.status_code == 302
    response = internal_client.post(url, {"action": "message", "text": "Kami menemani kalian."})
    assert response.status_code == 302
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "acknowledge_crisis", "staff_message",
    ]  # fmt: skip
    assert (
        Message.objects.filter(session=session).order_by("-seq").first().body
        == "Tim HaloBestie: Kami menemani kalian."
    )
    assert internal_client.get("/admin/sessions_app/chatsession/alerts.json").json() == {"sessions": []}


def test_it_keeps_the_handoff_page_from_staff_without_the_permission(active, make_staff, internal_client):
    session, _ = active()
    send(session, session.client, "pengen mati aja")
    internal_client.force_login(make_staff("finance"))
    url = f"/admin/sessions_app/chatsession/{session.id}/handoff/"
    assert internal_client.post(url, {"action": "acknowledge", "note": "x"}).status_code == 403
    assert ChatSession.objects.get(pk=session.pk).needs_staff_attention is True
    assert not AuditEntry.objects.exists()
