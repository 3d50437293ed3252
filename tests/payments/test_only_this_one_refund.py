"""'Only this one' (`allow_any_mitra=false`) end to end through the apps' own calls: the session is
paid through the Xendit webhook, the requested Bestie declines, nobody else is ever offered it
though another Bestie is free, the matching window runs out and the refund goes to (the fake)
Xendit and back through its callback. Real Postgres, real commits."""

from datetime import timedelta

import pytest

from mitras.services import mitra_heartbeat, mitra_set_online
from payments.models import Payment, Refund, RefundStatus
from sessions_app import matching, timers
from sessions_app.models import ChatSession, OfferOutcome, SessionOffer, Status
from tests.conftest import auth_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_runs_out_the_window_for_only_this_one_and_refunds_through_xendit(
    xendit, post_callback, make_client_user, make_mitra
):
    requested, other = make_mitra(), make_mitra()
    for mitra in (requested, other):
        mitra_set_online(mitra=mitra, is_online=True)
    client = make_client_user()
    created = auth_client(client).post(
        "/api/v1/sessions",
        {"package": "curhat-30", "mitra": requested.id, "allow_any_mitra": False},
        format="json",
    )
    assert created.status_code == 201
    assert (created.json()["requested_mitra_id"], created.json()["allow_any_mitra"]) == (requested.id, False)
    session = ChatSession.objects.get(pk=created.json()["id"])
    payment = Payment.objects.get(session=session)
    assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "applied"
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, requested.id)  # the first offer

    declined = auth_client(requested.user).post(f"/api/v1/sessions/{session.id}/decline")
    assert declined.status_code == 200
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.MATCHING, None)  # no fallback to `other`
    waiting = auth_client(client).get(f"/api/v1/sessions/{session.id}").json()
    assert (waiting["status"], waiting["eta_seconds"]) == ("matching", None)  # she declined: no estimate

    last_tick = session.matching_started_at + timedelta(seconds=599)
    for mitra in (requested, other):
        mitra_heartbeat(mitra=mitra, now=last_tick)
    assert matching.queue_dispatch(now=last_tick) == []
    assert timers.matching_expire_due(now=last_tick) == 0
    assert timers.matching_expire_due(now=last_tick + timedelta(seconds=1)) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.UNMATCHED, "no_mitra")
    assert list(SessionOffer.objects.filter(session=session).values_list("mitra_id", "outcome")) == [
        (requested.id, OfferOutcome.DECLINED)
    ]

    refund = Refund.objects.get(session=session)
    [sent] = xendit.calls("POST", "/refunds")
    assert sent["headers"]["idempotency-key"] == str(refund.pk)
    assert (sent["json"]["invoice_id"], sent["json"]["amount"], sent["json"]["metadata"]["reason"]) == (
        payment.invoice_id,
        25000,
        "no_mitra",
    )
    assert refund.status == RefundStatus.PENDING
    response = post_callback(xendit.refund_callback(str(refund.pk)), path="/webhooks/xendit/refund")
    assert response.json() == {"received": True, "outcome": "applied"}
    refund.refresh_from_db()
    assert (refund.status, refund.amount_idr) == (RefundStatus.SUCCEEDED, 25000)
