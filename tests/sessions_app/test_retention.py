"""Every retention purge, driven by the real scheduler tick: messages (bodies after
`message_retention_days`), OTP challenges (2 hours), realtime tickets (a day after expiry), mitra
login failures (a day) and the payer fields of payment callbacks (`callback_payer_retention_days`).
Each test checks that what is due goes and what is not stays."""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from halobestie import scheduler as halobestie_scheduler
from halobestie.accounts.models import LoginFailure, OtpChallenge
from halobestie.accounts.services import InvalidCredentials, auth_mitra_login, otp_challenge_request
from payments.models import Payment, PaymentCallback
from payments.services import invoice_callback_receive
from sessions_app import chat_store, lifecycle, stored_message, tickets
from sessions_app.models import Message, RealtimeTicket


def _send(session, user, body):
    async def run():
        try:
            return await chat_store.message_send(
                session_id=session.id,
                sender=stored_message.Sender(user_id=user.id),
                body=body,
                client_msg_id=uuid.uuid4().hex,
            )
        finally:
            await chat_store.close_pools()

    return async_to_sync(run)()


def test_it_purges_message_bodies_after_the_retention(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    sent = _send(session, session.client, "cerita lama")
    retention = timedelta(days=90)
    halobestie_scheduler.run_tick(now=sent.created_at + retention - timedelta(seconds=1))
    assert Message.objects.get(pk=sent.id).body == "cerita lama"
    due = sent.created_at + retention + timedelta(seconds=1)
    halobestie_scheduler.run_tick(now=due)
    purged = Message.objects.get(pk=sent.id)
    assert (purged.seq, purged.body, purged.body_purged_at) == (1, "", due)
    halobestie_scheduler.run_tick(now=due + timedelta(hours=1))  # idempotent
    assert Message.objects.get(pk=sent.id).body_purged_at == due


def test_it_purges_otp_challenges_after_two_hours():
    now = timezone.now()
    with override_settings(FAZPASS_ENABLED=False, OTP_TEST_PHONES=["+6281200000009", "+6281200000008"]):
        old = otp_challenge_request(
            phone="+6281200000009", ip_address="10.0.0.1", now=now - timedelta(hours=3)
        )
        recent = otp_challenge_request(
            phone="+6281200000008", ip_address="10.0.0.1", now=now - timedelta(hours=1)
        )
    halobestie_scheduler.run_tick(now=now)
    assert list(OtpChallenge.objects.values_list("id", flat=True)) == [recent.id]
    assert not OtpChallenge.objects.filter(pk=old.pk).exists()


def test_it_purges_realtime_tickets_a_day_after_expiry(make_client_user):
    user = make_client_user()
    now = timezone.now()
    tickets.ticket_issue(user=user, now=now - timedelta(days=2))
    tickets.ticket_issue(user=user, now=now - timedelta(hours=12))
    recent = RealtimeTicket.objects.order_by("-id").first()
    halobestie_scheduler.run_tick(now=now)
    assert list(RealtimeTicket.objects.values_list("id", flat=True)) == [recent.id]


def test_it_purges_mitra_login_failures_after_a_day(make_mitra):
    mitra = make_mitra(phone="+6281100000777")
    now = timezone.now()
    for at in (now - timedelta(days=2), now - timedelta(hours=2)):
        with pytest.raises(InvalidCredentials):
            auth_mitra_login(phone="+6281100000777", password="salah-sekali", ip_address="10.0.0.2", now=at)
    assert LoginFailure.objects.count() == 2
    halobestie_scheduler.run_tick(now=now)
    assert list(LoginFailure.objects.values_list("created_at", flat=True)) == [now - timedelta(hours=2)]
    assert mitra.user.is_active


def test_it_removes_payer_fields_from_callbacks_after_the_retention(make_client_user, settings):
    settings.XENDIT_WEBHOOK_TOKEN = "retention-test-callback-token"  # no default token exists (issue 15)
    client = make_client_user()
    session = lifecycle.session_create(client=client, package_code="curhat-15")
    payment = Payment.objects.get(session=session)
    body = {
        "id": payment.invoice_id, "external_id": payment.external_id, "status": "PAID",
        "amount": payment.amount_idr, "paid_amount": payment.amount_idr, "currency": "IDR",
        "payment_method": "EWALLET", "payment_channel": "OVO", "paid_at": "2026-01-02T03:04:05.000Z",
        "payer_email": "pembayar@contoh.id", "payment_destination": "081299998888",
        "description": "HaloBestie: Curhat 15 menit", "items": [{"name": "Curhat"}],
    }  # fmt: skip
    callback = invoice_callback_receive(token=settings.XENDIT_WEBHOOK_TOKEN, body=body)
    assert PaymentCallback.objects.get(pk=callback.pk).body["payer_email"] == "pembayar@contoh.id"
    halobestie_scheduler.run_tick(now=timezone.now() + timedelta(days=179))
    assert PaymentCallback.objects.get(pk=callback.pk).payer_data_removed_at is None

    later = timezone.now() + timedelta(days=181)
    halobestie_scheduler.run_tick(now=later)
    stored = PaymentCallback.objects.get(pk=callback.pk)
    assert stored.payer_data_removed_at == later
    assert stored.body == {
        "id": payment.invoice_id, "external_id": payment.external_id, "status": "PAID",
        "amount": payment.amount_idr, "paid_amount": payment.amount_idr, "currency": "IDR",
        "payment_method": "EWALLET", "payment_channel": "OVO", "paid_at": "2026-01-02T03:04:05.000Z",
    }  # fmt: skip
    assert (stored.reference, stored.status) == (payment.external_id, "PAID")
