"""Refunds: created by the sessions engine or staff, sent to the fake Xendit with our refund id as
the idempotency key, following the refund callback; without Xendit, settled by hand."""

from datetime import timedelta

import pytest
from django.utils import timezone

from halobestie.errors import Conflict, ServiceError
from payments import services
from payments.models import Payment, PaymentCallback, Refund, RefundStatus
from sessions_app import lifecycle, timers
from sessions_app.models import SessionEvent, Status


@pytest.fixture
def paid(xendit, make_client_user, post_callback):
    """A session paid through the webhook (no mitra online: it waits in matching)."""

    def make(package="curhat-30"):
        session = lifecycle.session_create(client=make_client_user(), package_code=package)
        payment = Payment.objects.get(session=session)
        assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "applied"
        session.refresh_from_db()
        return session, payment

    return make


def test_it_runs_the_refund_round_trip(xendit, paid, post_callback, django_capture_on_commit_callbacks):
    session, payment = paid()
    later = timezone.now() + timedelta(seconds=601)
    with django_capture_on_commit_callbacks(execute=True):
        assert timers.matching_expire_due(now=later) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.UNMATCHED, "no_mitra")

    refund = Refund.objects.get()
    [sent] = xendit.calls("POST", "/refunds")
    assert sent["headers"]["idempotency-key"] == str(refund.pk) == refund.idempotency_key
    assert sent["json"] == {
        "invoice_id": payment.invoice_id,
        "reference_id": str(refund.pk),
        "amount": 25000,
        "currency": "IDR",
        "reason": "CANCELLATION",
        "metadata": {"reason": "no_mitra", "session_id": str(session.pk)},
    }
    gateway_refund = xendit.refunds[str(refund.pk)]
    assert (refund.status, refund.xendit_refund_id, refund.amount_idr, refund.send_attempts) == (
        RefundStatus.PENDING, gateway_refund["id"], 25000, 1,
    )  # fmt: skip

    body = xendit.refund_callback(str(refund.pk))
    with django_capture_on_commit_callbacks(execute=True) as pushed:
        response = post_callback(body, path="/webhooks/xendit/refund")
    assert response.json() == {"received": True, "outcome": "applied"}
    assert len(pushed) == 2  # the client's "refund issued" push, and halobestie_refunds_total
    refund.refresh_from_db()
    assert (refund.status, refund.settled_at is not None) == (RefundStatus.SUCCEEDED, True)
    assert post_callback(body, path="/webhooks/xendit/refund").json()["outcome"] == "duplicate"
    # a late PENDING never takes a finished refund back
    pending = xendit.refund_callback(str(refund.pk), status="PENDING")
    assert post_callback(pending, path="/webhooks/xendit/refund").json()["outcome"] == "duplicate"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert list(
        SessionEvent.objects.filter(session=session, kind__startswith="refund").values_list("kind", flat=True)
    ) == ["refund_created", "refund_succeeded"]
    callbacks = PaymentCallback.objects.filter(kind="refund").order_by("id")
    assert [(c.refund_id, c.payment_id, c.outcome) for c in callbacks] == [
        (refund.pk, payment.pk, "applied"),
        (refund.pk, payment.pk, "duplicate"),
        (refund.pk, payment.pk, "duplicate"),
    ]


def test_it_resends_an_unconfirmed_refund_with_the_same_key_and_refunds_once(
    xendit, paid, django_capture_on_commit_callbacks
):
    session, payment = paid()
    xendit.fail_status = 500
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.session_end(session_id=session.id, actor=session.client)
    refund = Refund.objects.get()
    assert (refund.status, refund.reason, refund.send_attempts) == (
        RefundStatus.REQUESTED,
        "client_cancelled",
        1,
    )

    xendit.fail_status = None
    assert services.refunds_send_due(now=timezone.now() + timedelta(seconds=61)) == 1
    assert services.refunds_send_due(now=timezone.now() + timedelta(seconds=61)) == 0  # pending now
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING
    sent = xendit.calls("POST", "/refunds")
    assert [s["headers"]["idempotency-key"] for s in sent] == [str(refund.pk)] * 2
    assert sent[0]["json"]["reason"] == "REQUESTED_BY_CUSTOMER"
    assert len(xendit.refunds) == 1

    # a resend after Xendit already took it gets the same refund back, still one at Xendit
    with django_capture_on_commit_callbacks(execute=True):
        Refund.objects.filter(pk=refund.pk).update(status=RefundStatus.REQUESTED)
        services.refund_retry(refund=refund, actor=None)
    refund.refresh_from_db()
    assert (refund.status, len(xendit.refunds), len(xendit.calls("POST", "/refunds"))) == ("pending", 1, 3)


def test_it_retries_a_failed_refund_as_a_new_refund(
    xendit, paid, post_callback, make_staff, django_capture_on_commit_callbacks
):
    session, payment = paid()
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.session_end(session_id=session.id, actor=session.client)
    refund = Refund.objects.get()
    post_callback(xendit.refund_callback(str(refund.pk), status="FAILED"), path="/webhooks/xendit/refund")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED

    staff = make_staff("finance")
    with django_capture_on_commit_callbacks(execute=True):
        again = services.refund_retry(refund=refund, actor=staff)
    assert again.pk != refund.pk
    again.refresh_from_db()
    assert (again.retry_of_id, again.amount_idr, again.created_by_id, again.status) == (
        refund.pk, 25000, staff.pk, RefundStatus.PENDING,
    )  # fmt: skip
    assert xendit.calls("POST", "/refunds")[-1]["headers"]["idempotency-key"] == str(again.pk)
    with pytest.raises(Conflict) as refused:
        services.refund_retry(refund=again, actor=staff)
    assert refused.value.code == "refund_not_retryable"


def test_it_refuses_to_refund_more_than_was_paid(xendit, paid):
    session, payment = paid()
    first = services.refund_create(session=session, reason="staff_decision", amount_idr=10000)
    assert first.amount_idr == 10000
    with pytest.raises(ServiceError) as too_much:
        services.refund_create(session=session, reason="staff_decision", amount_idr=15001)
    assert (too_much.value.code, too_much.value.fields) == (
        "invalid_refund_amount",
        {"amount_idr": ["Maksimal 15000."]},
    )
    rest = services.refund_create(session=session, reason="staff_decision")
    assert rest.amount_idr == 15000
    with pytest.raises(Conflict) as nothing:
        services.refund_create(session=session, reason="staff_decision")
    assert nothing.value.code == "nothing_to_refund"
    assert services.refund_create(session=session, reason="no_mitra", allow_nothing=True) is None
    assert Refund.objects.count() == 2


def test_it_refuses_to_refund_an_unpaid_session(make_client_user):
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    with pytest.raises(Conflict):
        services.refund_create(session=session, reason="staff_decision")
    assert Refund.objects.count() == 0


def test_it_keeps_a_refund_pending_for_staff_without_xendit(make_client_user, make_staff, post_callback):
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    payment = Payment.objects.get(session=session)
    assert payment.invoice_id == f"local-{payment.external_id}"
    services.local_checkout_complete(external_id=payment.external_id, is_paid=True)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    refund = Refund.objects.get()
    assert (refund.status, refund.is_gateway_refund, refund.amount_idr) == (
        RefundStatus.PENDING,
        False,
        15000,
    )

    staff = make_staff("finance")
    settled = services.refund_settle_manually(refund=refund, actor=staff)
    assert (settled.status, settled.settled_by_id) == (RefundStatus.MANUAL_SETTLED, staff.pk)
    with pytest.raises(Conflict) as again:
        services.refund_settle_manually(refund=refund, actor=staff)
    assert again.value.code == "refund_already_settled"


def test_it_refuses_a_refund_callback_with_a_wrong_token(xendit, paid, post_callback):
    session, payment = paid()
    refund = services.refund_create(session=session, reason="staff_decision")
    body = {"event": "refund.succeeded", "data": {"reference_id": str(refund.pk), "status": "SUCCEEDED"}}
    response = post_callback(body, path="/webhooks/xendit/refund", token="wrong")
    assert response.status_code == 401
    refund.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED
    assert PaymentCallback.objects.filter(kind="refund").count() == 0


def test_it_acknowledges_a_refund_callback_for_an_unknown_refund(xendit, post_callback):
    body = {
        "event": "refund.succeeded",
        "data": {"id": "rfd-x", "reference_id": "nope", "status": "SUCCEEDED"},
    }
    assert post_callback(body, path="/webhooks/xendit/refund").json() == {
        "received": True, "outcome": "unknown_reference",
    }  # fmt: skip


def test_it_lets_finance_settle_a_refund_in_the_control_center(internal_client, make_staff, make_client_user):
    from halobestie.audit.models import AuditEntry

    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    services.local_checkout_complete(
        external_id=Payment.objects.get(session=session).external_id, is_paid=True
    )
    lifecycle.session_end(session_id=session.id, actor=session.client)
    refund = Refund.objects.get()
    internal_client.force_login(make_staff("support"))
    internal_client.post(
        "/admin/payments/refund/", {"action": "settle_manually", "_selected_action": [str(refund.pk)]}
    )
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING

    internal_client.force_login(make_staff("finance"))
    assert internal_client.get("/admin/payments/refund/").status_code == 200
    assert internal_client.get("/admin/payments/payment/").status_code == 200
    assert internal_client.get("/admin/payments/paymentcallback/").status_code == 200
    internal_client.post(
        "/admin/payments/refund/", {"action": "settle_manually", "_selected_action": [str(refund.pk)]}
    )
    refund.refresh_from_db()
    assert refund.status == RefundStatus.MANUAL_SETTLED
    assert AuditEntry.objects.filter(action="refund_settle_manually", object_id=str(refund.pk)).count() == 1


def test_it_refuses_to_settle_by_hand_a_refund_xendit_is_still_paying(
    xendit, paid, make_staff, django_capture_on_commit_callbacks
):
    session, _ = paid()
    with django_capture_on_commit_callbacks(execute=True):
        timers.matching_expire_due(now=timezone.now() + timedelta(seconds=601))
    refund = Refund.objects.get(session=session)
    assert (refund.is_gateway_refund, refund.status) == (True, RefundStatus.PENDING)
    with pytest.raises(Conflict) as error:
        services.refund_settle_manually(refund=refund, actor=make_staff("finance"))
    assert error.value.code == "refund_in_progress_at_gateway"
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PENDING
