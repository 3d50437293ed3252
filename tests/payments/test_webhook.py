"""POST /webhooks/xendit/invoice with Xendit-shaped bodies, against sessions made through the
real services and invoices opened at the fake Xendit."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from payments.models import Payment, PaymentCallback, PaymentStatus, Refund
from sessions_app import lifecycle, matching
from sessions_app.models import ChatSession, SessionEvent, Status


@pytest.fixture
def pending(xendit, make_client_user):
    """A session awaiting payment, its Payment, and the fake's invoice id."""

    def make(package="curhat-30"):
        session = lifecycle.session_create(client=make_client_user(), package_code=package)
        payment = Payment.objects.get(session=session)
        return session, payment

    return make


def snapshot(session, payment):
    row = ChatSession.objects.values().get(pk=session.pk)
    row.pop("updated_at")
    pay = Payment.objects.values().get(pk=payment.pk)
    pay.pop("updated_at")
    return row, pay, SessionEvent.objects.filter(session=session).count()


def test_it_puts_a_paid_session_into_matching(xendit, pending, post_callback):
    session, payment = pending()
    response = post_callback(xendit.paid_callback(payment.invoice_id))
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "applied"}

    session.refresh_from_db()
    payment.refresh_from_db()
    assert session.status == Status.MATCHING
    assert session.paid_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (payment.status, payment.paid_at, payment.paid_amount_idr) == (
        PaymentStatus.PAID, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), 25000,
    )  # fmt: skip
    assert (payment.payment_method, payment.payment_channel, payment.flagged_for_staff) == (
        "QR_CODE",
        "QRIS",
        False,
    )
    callback = PaymentCallback.objects.get()
    assert (callback.kind, callback.payment_id, callback.status, callback.outcome) == (
        "invoice", payment.pk, "PAID", "applied",
    )  # fmt: skip
    assert callback.body == xendit.paid_callback(payment.invoice_id)
    assert callback.headers == {"content-type": "application/json", "user-agent": "Xendit-Callback/1.0"}


def test_it_treats_settled_as_paid(xendit, pending, post_callback):
    session, payment = pending()
    assert (
        post_callback(xendit.paid_callback(payment.invoice_id, status="SETTLED")).json()["outcome"]
        == "applied"
    )
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    # and PAID arriving after SETTLED changes nothing
    assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "duplicate"


def test_it_makes_one_transition_from_the_same_callback_five_times(xendit, pending, post_callback):
    session, payment = pending()
    body = xendit.paid_callback(payment.invoice_id)
    outcomes = [post_callback(body).json()["outcome"] for _ in range(5)]
    assert outcomes == ["applied", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert SessionEvent.objects.filter(session=session, kind="paid").count() == 1
    assert SessionEvent.objects.filter(session=session, kind="payment_paid").count() == 1
    assert PaymentCallback.objects.filter(payment=payment).count() == 5
    session.refresh_from_db()
    assert session.status == Status.MATCHING


def test_it_makes_one_transition_from_five_concurrent_callbacks(transactional_db, xendit, make_client_user):
    from payments import services

    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    payment = Payment.objects.get(session=session)
    body = xendit.paid_callback(payment.invoice_id)
    barrier = threading.Barrier(5)
    outcomes = []

    def deliver():
        from django.db import connection

        barrier.wait()
        try:
            outcomes.append(services.invoice_callback_receive(token=xendit_token(), body=body).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert SessionEvent.objects.filter(session=session, kind="paid").count() == 1
    session.refresh_from_db()
    assert session.status == Status.MATCHING


def xendit_token():
    from tests.payments.conftest import CALLBACK_TOKEN

    return CALLBACK_TOKEN


@pytest.mark.parametrize("token", ["wrong-token", "", None, "fake-callback-token-012345678"])
def test_it_refuses_a_wrong_token_with_401_and_changes_nothing(token, xendit, pending, post_callback):
    session, payment = pending()
    before = snapshot(session, payment)
    response = post_callback(xendit.paid_callback(payment.invoice_id), token=token)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "invalid_callback_token", "detail": "Token callback tidak valid."}
    }
    assert snapshot(session, payment) == before
    assert PaymentCallback.objects.count() == 0


def test_it_checks_the_token_before_it_reads_the_body(xendit, api):
    response = api.post(
        "/webhooks/xendit/invoice", "{not json", content_type="application/json", HTTP_X_CALLBACK_TOKEN="nope"
    )
    assert response.status_code == 401


def test_it_refuses_a_body_it_cannot_read_with_400(xendit, api, post_callback):
    from tests.payments.conftest import CALLBACK_TOKEN

    response = api.post(
        "/webhooks/xendit/invoice",
        "{not json",
        content_type="application/json",
        HTTP_X_CALLBACK_TOKEN=CALLBACK_TOKEN,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_callback")
    response = post_callback({"external_id": "hb-session-x", "status": "RANDOM"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"status": ["Status tidak dikenal."]}
    assert PaymentCallback.objects.count() == 0


def test_it_ignores_expired_after_paid(xendit, pending, post_callback):
    session, payment = pending()
    post_callback(xendit.paid_callback(payment.invoice_id))
    before = snapshot(session, payment)
    response = post_callback(xendit.expired_callback(payment.invoice_id))
    assert response.json() == {"received": True, "outcome": "ignored_out_of_order"}
    assert snapshot(session, payment) == before
    session.refresh_from_db()
    assert session.status == Status.MATCHING


def test_it_cancels_the_session_when_its_invoice_expires(xendit, pending, post_callback):
    session, payment = pending()
    assert post_callback(xendit.expired_callback(payment.invoice_id)).json()["outcome"] == "applied"
    session.refresh_from_db()
    payment.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.CANCELLED, "payment_expired")
    assert payment.status == PaymentStatus.EXPIRED
    assert post_callback(xendit.expired_callback(payment.invoice_id)).json()["outcome"] == "duplicate"
    assert Refund.objects.count() == 0


def test_it_refunds_and_flags_money_paid_after_the_invoice_expired(
    xendit, pending, post_callback, django_capture_on_commit_callbacks
):
    session, payment = pending()
    post_callback(xendit.expired_callback(payment.invoice_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_callback(xendit.paid_callback(payment.invoice_id))
    assert response.json() == {"received": True, "outcome": "paid_too_late_refunded"}
    session.refresh_from_db()
    payment.refresh_from_db()
    assert session.status == Status.CANCELLED
    assert (payment.status, payment.flagged_for_staff) == (PaymentStatus.PAID, True)
    assert payment.flag_reason == "paid_after_close: illegal_transition (was expired)"
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.amount_idr, refund.reason, refund.status) == (
        payment.pk, 25000, "paid_after_close", "pending",
    )  # fmt: skip
    [sent] = xendit.calls("POST", "/refunds")
    assert sent["headers"]["idempotency-key"] == str(refund.pk)
    assert (sent["json"]["invoice_id"], sent["json"]["amount"]) == (payment.invoice_id, 25000)


def test_it_flags_an_amount_other_than_ours_and_starts_nothing(xendit, pending, post_callback):
    session, payment = pending()
    before_session, _, before_events = snapshot(session, payment)
    response = post_callback(xendit.paid_callback(payment.invoice_id, amount=2500))
    assert response.json() == {"received": True, "outcome": "amount_mismatch"}
    after_session, _, _ = snapshot(session, payment)
    assert after_session == before_session
    payment.refresh_from_db()
    assert (payment.status, payment.paid_at, payment.flagged_for_staff) == (PaymentStatus.PENDING, None, True)
    assert payment.flag_reason == "amount_mismatch: ours 25000, callback 2500"
    assert SessionEvent.objects.filter(session=session).count() == before_events + 1  # payment_flagged
    assert Refund.objects.count() == 0


def test_it_flags_a_paid_amount_other_than_the_invoice_amount(xendit, pending, post_callback):
    session, payment = pending()
    body = xendit.paid_callback(payment.invoice_id)
    body["paid_amount"] = 1000
    assert post_callback(body).json()["outcome"] == "amount_mismatch"
    session.refresh_from_db()
    assert session.status == Status.PENDING_PAYMENT


def test_it_acknowledges_and_stores_an_unknown_external_id(xendit, post_callback, caplog):
    body = {"id": "inv-elsewhere", "external_id": "hb-session-unknown", "status": "PAID", "amount": 1}
    response = post_callback(body)
    assert response.json() == {"received": True, "outcome": "unknown_reference"}
    callback = PaymentCallback.objects.get()
    assert (callback.payment_id, callback.reference, callback.body) == (None, "hb-session-unknown", body)
    assert "payment callback for an unknown external_id" in caplog.text


def test_it_never_stores_the_callback_token(xendit, pending, post_callback):
    session, payment = pending()
    post_callback(xendit.paid_callback(payment.invoice_id))
    stored = PaymentCallback.objects.values_list("headers", "body").get()
    assert "fake-callback-token" not in repr(stored)


def _active(xendit, post_callback, make_client_user, make_mitra):
    from mitras.services import mitra_set_online

    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    client = make_client_user()
    session = lifecycle.session_create(client=client, package_code="curhat-15")
    post_callback(xendit.paid_callback(Payment.objects.get(session=session).invoice_id))
    matching.queue_dispatch()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    return session, client, mitra


def test_it_extends_an_active_session_when_the_extension_is_paid(
    xendit, post_callback, make_client_user, make_mitra
):
    session, client, _ = _active(xendit, post_callback, make_client_user, make_mitra)
    ends_at = session.ends_at
    extension = lifecycle.session_extension_request(
        session_id=session.id, client=client, package_code="curhat-30"
    )
    assert (extension.kind, extension.amount_idr, extension.status) == ("extension", 25000, "pending")
    assert post_callback(xendit.paid_callback(extension.invoice_id)).json()["outcome"] == "applied"
    assert post_callback(xendit.paid_callback(extension.invoice_id)).json()["outcome"] == "duplicate"
    session.refresh_from_db()
    assert session.ends_at == ends_at + timedelta(minutes=30)
    assert session.extensions_total_idr == 25000


def test_it_refunds_an_extension_paid_after_the_session_ended(
    xendit, post_callback, make_client_user, make_mitra, django_capture_on_commit_callbacks
):
    session, client, _ = _active(xendit, post_callback, make_client_user, make_mitra)
    extension = lifecycle.session_extension_request(
        session_id=session.id, client=client, package_code="curhat-15"
    )
    lifecycle.session_end(session_id=session.id, actor=client)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = post_callback(xendit.paid_callback(extension.invoice_id)).json()["outcome"]
    assert outcome == "paid_too_late_refunded"
    session.refresh_from_db()
    assert (session.status, session.extensions_total_idr) == (Status.ENDED, 0)
    refund = Refund.objects.get()
    assert (refund.payment_id, refund.amount_idr) == (extension.pk, 15000)
    assert xendit.calls("POST", "/refunds")[0]["json"]["invoice_id"] == extension.invoice_id


def test_it_expiring_an_extension_leaves_the_session_alone(
    xendit, post_callback, make_client_user, make_mitra
):
    session, client, _ = _active(xendit, post_callback, make_client_user, make_mitra)
    extension = lifecycle.session_extension_request(
        session_id=session.id, client=client, package_code="curhat-15"
    )
    assert post_callback(xendit.expired_callback(extension.invoice_id)).json()["outcome"] == "applied"
    session.refresh_from_db()
    extension.refresh_from_db()
    assert (session.status, extension.status) == (Status.ACTIVE, PaymentStatus.EXPIRED)
