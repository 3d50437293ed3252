"""Erasure that erases: one transcript at the client's request, and everything of the client's
when the account is deleted, checked by scanning every text and JSON column of every model."""

import uuid

from asgiref.sync import async_to_sync
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast

from halobestie.accounts.models import Device
from halobestie.accounts.services import device_register, user_update_profile
from payments.models import Payment
from payments.services import invoice_callback_receive
from sessions_app import chat_store, handoff, lifecycle, matching, stored_message, tickets
from sessions_app.models import ChatSession, Message, SessionEvent
from tests.conftest import auth_client


def _send(session, user, body, mitra=None):
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
    if stored.crisis_source:  # what the socket does right after the ack
        handoff.crisis_followup(session_id=session.id)
    return stored


def _chat(paid_session, online_mitra, client=None):
    mitra = online_mitra()
    session = paid_session(client=client, mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    _send(session, session.client, "rahasiaku: aku bertengkar dengan ibuku")
    _send(session, mitra.user, "terima kasih sudah cerita", mitra=mitra)
    _send(session, session.client, "aku pengen mati rasanya")  # and the hotline, a system message
    return ChatSession.objects.get(pk=session.id), mitra


def test_it_erases_one_ended_transcript_and_keeps_the_seqs(paid_session, online_mitra):
    session, mitra = _chat(paid_session, online_mitra)
    client = auth_client(session.client)
    response = client.delete(f"/api/v1/sessions/{session.id}/messages")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "session_not_ended")
    assert Message.objects.filter(session=session, body="").count() == 0

    lifecycle.session_end(session_id=session.id, actor=session.client)
    assert auth_client(mitra.user).delete(f"/api/v1/sessions/{session.id}/messages").status_code == 403
    response = client.delete(f"/api/v1/sessions/{session.id}/messages")
    assert (response.status_code, response.json()) == (200, {"erased_messages": 4})
    tombstones = Message.objects.filter(session=session).order_by("seq")
    assert list(tombstones.values_list("seq", "body", "client_msg_id")) == [
        (1, "", ""), (2, "", ""), (3, "", ""), (4, "", ""),
    ]  # fmt: skip
    assert not Message.objects.filter(session=session, body_purged_at__isnull=True).exists()
    page = client.get(f"/api/v1/sessions/{session.id}/messages").json()
    assert [(m["seq"], m["body"]) for m in page["results"]] == [(1, ""), (2, ""), (3, ""), (4, "")]
    assert client.delete(f"/api/v1/sessions/{session.id}/messages").json() == {"erased_messages": 0}
    assert SessionEvent.objects.filter(session=session, kind="transcript_erased").count() == 1


def test_it_refuses_another_clients_transcript(paid_session, online_mitra, make_client_user):
    session, _ = _chat(paid_session, online_mitra)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    response = auth_client(make_client_user()).delete(f"/api/v1/sessions/{session.id}/messages")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "session_not_found")
    assert Message.objects.filter(session=session, body="").count() == 0


def _text_columns():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                yield model, field


def _scan(strings):
    """Every (table, column, string) where a text or JSON column still holds one of `strings`."""
    found = []
    for model, field in _text_columns():
        rows = model._default_manager.annotate(_text=Cast(field.name, models.TextField()))
        for string in strings:
            if rows.filter(_text__icontains=string).exists():
                found.append((model._meta.db_table, field.column, string))
    return found


def test_it_leaves_nothing_of_the_client_behind_after_account_deletion(
    online_mitra, make_client_user, settings
):
    settings.XENDIT_WEBHOOK_TOKEN = "erasure-test-callback-token"  # no default token exists (issue 15)
    client = user_update_profile(
        user=make_client_user(phone="+6281377001122"), display_name="Sekar Ayuningtyas"
    )
    device_register(user=client, token="fcm-token-sekar-3f9c2a", platform="android")
    tickets.ticket_issue(user=client)

    # A session paid through the gateway callback, whose body carries the payer's data.
    mitra = online_mitra()
    session = lifecycle.session_create(client=client, package_code="curhat-15", mitra_id=mitra.id)
    payment = Payment.objects.get(session=session)
    invoice_callback_receive(
        token=settings.XENDIT_WEBHOOK_TOKEN,
        body={
            "id": payment.invoice_id, "external_id": payment.external_id, "status": "PAID",
            "amount": payment.amount_idr, "paid_amount": payment.amount_idr, "currency": "IDR",
            "payment_method": "EWALLET", "payment_channel": "DANA", "payer_email": "sekar.ayu@contoh.id",
            "payment_destination": "6281377001122", "customer": {"given_names": "Sekar Ayuningtyas"},
        },
    )  # fmt: skip
    matching.queue_dispatch()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    _send(session, client, "Namaku Sekar, aku kerja di toko roti Melati dan capek hidup")
    _send(session, mitra.user, "Sekar, toko roti Melati pasti berat ya", mitra=mitra)
    lifecycle.session_end(session_id=session.id, actor=client)
    lifecycle.session_rate(
        session_id=session.id, client=client, score=4, comment="Kak Bestie sabar, toko roti Melati"
    )
    lifecycle.session_report(
        session_id=session.id, reporter=client, reason="other", detail="laporan Sekar: jam 3"
    )
    lifecycle.session_report(
        session_id=session.id,
        reporter=mitra.user,
        reason="safety",
        detail="Klien Sekar dari toko roti Melati",
    )
    strings = [
        "6281377001122", "081377001122", "Sekar", "Ayuningtyas", "fcm-token-sekar", "roti Melati",
        "capek hidup", "sekar.ayu@contoh.id", "laporan Sekar", "Bestie sabar",
    ]  # fmt: skip
    assert len(_scan(strings)) > 8  # the scan sees what is there

    response = auth_client(client).delete("/api/v1/me")
    assert response.status_code in (200, 204)

    assert _scan(strings) == []
    # What the books and the statistics need stays.
    session.refresh_from_db()
    assert (session.status, session.price_idr, session.last_seq) == ("ended", 15000, 3)
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)) == [
        1,
        2,
        3,
    ]
    assert session.rating.score == 4
    assert sorted(session.reports.values_list("reason", flat=True)) == ["other", "safety"]
    assert Payment.objects.get(pk=payment.pk).amount_idr == 15000
    assert payment.callbacks.get().body["payment_channel"] == "DANA"
    assert not Device.objects.filter(user=client).exists()
