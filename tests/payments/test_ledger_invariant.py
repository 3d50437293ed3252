"""The money invariant under random histories (hypothesis), on real PostgreSQL and the fake Xendit:
after every step of any sequence of pay / extend / end / refund / refund failure / retry,
    paid − refunded = client net,  Bestie + platform = client net,  nobody negative,
and each mitra's ledger is the sum of its sessions'."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halobestie.errors import ServiceError
from mitras.models import Mitra
from mitras.services import mitra_set_online
from payments.models import REFUND_COUNTING_STATUSES, Payment, PaymentStatus, Refund, RefundStatus
from payments.services import refund_retry
from sessions_app import lifecycle, settlement, timers
from sessions_app.models import ChatSession, EarningsEntry, Status
from sessions_app.selectors import session_money

ENDS = ("client", "mitra", "staff", "staff_mitra_fault", "staff_client_fault", "time_up")
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            (
                "extend",
                "pay_extensions",
                "end",
                "refund",
                "refund_too_much",
                "fail_refund",
                "succeed_refund",
                "retry",
            )
        ),
        st.integers(min_value=0, max_value=100),
        st.sampled_from(ENDS),
    ),
    max_size=8,
)


@pytest.fixture(autouse=True)
def _real_commits(transactional_db):
    """Refund sends and offer dispatch happen after commit: real commits."""


class History:
    """One session driven through the real services and the webhook, step by step."""

    def __init__(self, xendit, post_callback, client, mitra, staff, package):
        self.xendit, self.post, self.staff = xendit, post_callback, staff
        session = lifecycle.session_create(client=client, package_code=package)
        payment = Payment.objects.get(session=session)
        assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "applied"
        session.refresh_from_db()
        assert session.status == Status.OFFERED, session.status
        offered = Mitra.objects.select_related("user").get(pk=session.mitra_id)
        lifecycle.session_accept(session_id=session.id, mitra=offered)
        self.mitra = offered
        self.session_id = session.id

    @property
    def session(self):
        return ChatSession.objects.get(pk=self.session_id)

    def step(self, action, number, end):
        session = self.session
        if action == "extend" and session.status == Status.ACTIVE:
            lifecycle.session_extension_request(
                session_id=session.id,
                client=session.client,
                package_code=("curhat-15", "curhat-30")[number % 2],
            )
        elif action == "pay_extensions":
            for payment in Payment.objects.filter(session=session, status=PaymentStatus.PENDING):
                self.post(self.xendit.paid_callback(payment.invoice_id))
        elif action == "end" and session.status == Status.ACTIVE:
            self.end(session, number, end)
        elif action in ("refund", "refund_too_much"):
            money = session_money(session=session)
            amount = (
                money.client_net_idr * number // 100
                if action == "refund"
                else money.client_net_idr + 1 + number
            )
            try:
                settlement.session_refund_by_staff(
                    session_id=session.id, actor=self.staff, amount_idr=amount, note="uji"
                )
            except ServiceError as error:
                assert amount <= 0 or amount > money.client_net_idr, error.code
                assert session_money(session=session) == money  # refused: nothing changed
        elif action in ("fail_refund", "succeed_refund"):
            refund = (
                Refund.objects.filter(session=session, status=RefundStatus.PENDING)
                .order_by("created_at")
                .first()
            )
            if refund is not None:
                status = "FAILED" if action == "fail_refund" else "SUCCEEDED"
                body = self.xendit.refund_callback(refund.idempotency_key, status=status)
                assert self.post(body, path="/webhooks/xendit/refund").json()["outcome"] == "applied"
        elif action == "retry":
            refund = Refund.objects.filter(session=session, status=RefundStatus.FAILED).first()
            if refund is not None:
                try:
                    refund_retry(refund=refund, actor=self.staff)
                except ServiceError as error:
                    assert error.code in ("nothing_to_refund", "refund_not_retryable")

    def end(self, session, number, end):
        paid_minutes = (session.duration_seconds + session.extended_seconds) // 60
        at = session.accepted_at + timedelta(minutes=number % (paid_minutes + 1))
        if end == "time_up":
            assert timers.sessions_end_due(now=session.ends_at) == 1
        elif end == "client":
            lifecycle.session_end(session_id=session.id, actor=session.client, now=at)
        elif end == "mitra":
            lifecycle.session_end(session_id=session.id, actor=self.mitra.user, now=at)
        else:
            fault = {"staff": "", "staff_mitra_fault": "mitra", "staff_client_fault": "client"}[end]
            lifecycle.session_end(session_id=session.id, actor=self.staff, fault=fault, now=at)

    def check(self):
        session = self.session
        money = session_money(session=session)
        paid = Payment.objects.filter(session=session, status=PaymentStatus.PAID).aggregate(
            t=Sum("amount_idr")
        )["t"]
        refunded = Refund.objects.filter(session=session, status__in=REFUND_COUNTING_STATUSES).aggregate(
            t=Sum("amount_idr")
        )["t"]
        assert (money.paid_idr, money.refunded_idr) == (paid or 0, refunded or 0)
        assert money.client_net_idr == money.paid_idr - money.refunded_idr >= 0
        assert money.mitra_idr + money.platform_idr == money.client_net_idr
        assert money.is_balanced, money
        assert money.is_settled == (session.status == Status.ENDED)
        if money.is_settled:
            share = EarningsEntry.objects.get(session=session, kind="earning").share_percent
            assert money.mitra_idr == money.client_net_idr * share // 100
        mine = EarningsEntry.objects.filter(mitra=self.mitra)
        by_session = mine.values("session").annotate(t=Sum("amount_idr")).values_list("t", flat=True)
        assert (mine.aggregate(t=Sum("amount_idr"))["t"] or 0) == sum(by_session)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(package=st.sampled_from(("curhat-15", "curhat-30", "curhat-60")), steps=STEPS)
def test_it_keeps_every_session_balanced_after_every_step(
    package, steps, xendit, post_callback, make_client_user, make_mitra, make_staff
):
    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    history = History(xendit, post_callback, make_client_user(), mitra, make_staff("finance"), package)
    history.check()
    for action, number, end in [*steps, ("end", 0, "client")]:
        history.step(action, number, end)
        history.check()
    mitra_set_online(mitra=history.mitra, is_online=False)
