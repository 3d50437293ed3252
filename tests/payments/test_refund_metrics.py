"""halobestie_refunds_total follows a refund through the fake Xendit: created, each failed send,
and the gateway's final answer; the counters move only after commit."""

from datetime import timedelta

from django.utils import timezone
from prometheus_client import REGISTRY

from payments import services
from payments.models import Refund, RefundStatus
from sessions_app import lifecycle
from tests.payments import test_refunds

paid = test_refunds.paid  # the fixture: a session paid through the webhook, waiting in matching
OUTCOMES = ("created", "send_failed", "succeeded", "failed")


def counts():
    return {
        outcome: REGISTRY.get_sample_value("halobestie_refunds_total", {"outcome": outcome}) or 0.0
        for outcome in OUTCOMES
    }


def moved(before):
    after = counts()
    return {
        outcome: after[outcome] - before[outcome] for outcome in OUTCOMES if after[outcome] != before[outcome]
    }


def test_it_counts_a_refund_created_its_failed_sends_and_the_gateways_refusal(
    xendit,
    paid,
    post_callback,
    django_capture_on_commit_callbacks,
):
    session, _ = paid()
    before = counts()
    xendit.fail_status = 500
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.session_end(session_id=session.id, actor=session.client)
    assert services.refunds_send_due(now=timezone.now() + timedelta(seconds=61)) == 0
    assert moved(before) == {"created": 1.0, "send_failed": 2.0}

    xendit.fail_status = None
    assert services.refunds_send_due(now=timezone.now() + timedelta(seconds=61)) == 1
    refund = Refund.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        post_callback(xendit.refund_callback(str(refund.pk), status="FAILED"), path="/webhooks/xendit/refund")
    refund.refresh_from_db()
    assert refund.status == RefundStatus.FAILED
    assert moved(before) == {"created": 1.0, "send_failed": 2.0, "failed": 1.0}


def test_it_counts_a_refund_the_gateway_paid(xendit, paid, post_callback, django_capture_on_commit_callbacks):
    session, _ = paid()
    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.session_end(session_id=session.id, actor=session.client)
    refund = Refund.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        post_callback(xendit.refund_callback(str(refund.pk)), path="/webhooks/xendit/refund")
        # the same callback again changes nothing
        post_callback(xendit.refund_callback(str(refund.pk)), path="/webhooks/xendit/refund")

    assert moved(before) == {"created": 1.0, "succeeded": 1.0}
