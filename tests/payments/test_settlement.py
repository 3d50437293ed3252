"""Fair money, end to end on the fake Xendit: one test per way a session ends, with the exact
ledger rows, the automatic refunds and the refund calls Xendit received."""

from datetime import timedelta

import pytest

from halobestie.errors import ServiceError
from mitras.services import mitra_deactivate, mitra_heartbeat, mitra_set_online
from payments.models import Payment, Refund, RefundStatus
from sessions_app import lifecycle, settlement, timers
from sessions_app.models import EarningsEntry, Status
from sessions_app.selectors import SessionMoney, session_money


@pytest.fixture(autouse=True)
def _real_commits(transactional_db):
    """Refunds go to Xendit after commit and offers are dispatched after commit: real commits."""


@pytest.fixture
def online_mitra(make_mitra):
    def make():
        mitra = make_mitra()
        mitra_set_online(mitra=mitra, is_online=True)
        mitra.refresh_from_db()
        return mitra

    return make


@pytest.fixture
def active(xendit, post_callback, make_client_user, online_mitra):
    """A session paid through the Xendit webhook and accepted by an online mitra."""

    def make(package):
        mitra = online_mitra()
        session = lifecycle.session_create(client=make_client_user(), package_code=package)
        payment = Payment.objects.get(session=session)
        assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "applied"
        session.refresh_from_db()
        assert (session.status, session.mitra_id) == (Status.OFFERED, mitra.id)
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        session.refresh_from_db()
        return session, mitra

    return make


def ledger(session):
    return list(
        EarningsEntry.objects.filter(session=session)
        .order_by("id")
        .values_list("kind", "amount_idr", "platform_idr", "share_percent", "served_minutes", "paid_minutes")
    )


def refund_calls(xendit):
    return [
        (
            call["json"]["invoice_id"],
            call["json"]["amount"],
            call["json"]["reason"],
            call["headers"]["idempotency-key"],
        )
        for call in xendit.calls("POST", "/refunds")
    ]


def refunds(session):
    return list(
        Refund.objects.filter(session=session).order_by("created_at").values_list("amount_idr", "reason")
    )


def assert_balanced(session, *, paid, refunded, mitra, platform):
    money = session_money(session=session)
    assert money == SessionMoney(paid, refunded, mitra, platform, True)
    assert money.client_net_idr == paid - refunded == mitra + platform
    assert money.is_balanced


def test_it_pays_the_full_share_when_the_client_ends_early(active, xendit):
    session, mitra = active("curhat-30")
    lifecycle.session_end(
        session_id=session.id, actor=session.client, now=session.accepted_at + timedelta(minutes=10)
    )
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.ENDED, "client_ended")
    assert ledger(session) == [("earning", 17500, 7500, 70, 10, 30)]
    assert refunds(session) == [] and refund_calls(xendit) == []
    assert_balanced(session, paid=25000, refunded=0, mitra=17500, platform=7500)


def test_it_pays_the_full_share_when_the_time_is_up(active, xendit):
    session, mitra = active("curhat-30")
    assert timers.sessions_end_due(now=session.ends_at) == 1
    session.refresh_from_db()
    assert session.end_reason == "expired"
    assert ledger(session) == [("earning", 17500, 7500, 70, 30, 30)]
    assert refund_calls(xendit) == []
    assert_balanced(session, paid=25000, refunded=0, mitra=17500, platform=7500)


def test_it_refunds_the_unserved_minutes_when_the_mitra_ends_at_minute_3_of_15(active, xendit):
    session, mitra = active("curhat-15")
    lifecycle.session_end(
        session_id=session.id, actor=mitra.user, now=session.accepted_at + timedelta(minutes=3)
    )
    session.refresh_from_db()
    assert session.end_reason == "mitra_ended"
    # 12 of 15 minutes unserved: 15000 × 12/15 back; the Bestie earns 70% of the 3000 left
    assert refunds(session) == [(12000, "unserved_minutes")]
    refund = Refund.objects.get(session=session)
    payment = Payment.objects.get(session=session)
    assert refund_calls(xendit) == [(payment.invoice_id, 12000, "CANCELLATION", str(refund.pk))]
    assert refund.status == RefundStatus.PENDING and refund.is_gateway_refund
    assert ledger(session) == [("earning", 2100, 900, 70, 3, 15)]
    assert_balanced(session, paid=15000, refunded=12000, mitra=2100, platform=900)


def test_it_pays_only_the_minutes_before_a_lost_mitra_vanished(active, xendit):
    session, mitra = active("curhat-30")
    start = session.accepted_at
    mitra_heartbeat(mitra=mitra, now=start + timedelta(minutes=5))
    lapsed_at = start + timedelta(minutes=5, seconds=31)
    assert timers.sessions_check_mitra_presence(now=lapsed_at) == 1
    assert timers.sessions_check_mitra_presence(now=lapsed_at + timedelta(seconds=121)) == 1
    session.refresh_from_db()
    assert (session.end_reason, session.mitra_lost_at, session.needs_refund_review) == (
        "mitra_lost",
        lapsed_at,
        False,
    )
    # served until the presence lapsed (5 whole minutes), not until the grace ran out
    assert refunds(session) == [(20834, "unserved_minutes")]  # ceil(25000 × 25/30)
    refund = Refund.objects.get(session=session)
    payment = Payment.objects.get(session=session)
    assert refund_calls(xendit) == [(payment.invoice_id, 20834, "CANCELLATION", str(refund.pk))]
    assert ledger(session) == [("earning", 2916, 1250, 70, 5, 30)]
    assert_balanced(session, paid=25000, refunded=20834, mitra=2916, platform=1250)


def test_it_refunds_everything_unserved_when_staff_deactivate_the_mitra(active, xendit, make_staff):
    session, mitra = active("curhat-15")
    mitra_deactivate(mitra=mitra, actor=make_staff("admin"))
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.ENDED, "staff_ended")
    assert refunds(session) == [(15000, "unserved_minutes")]
    refund = Refund.objects.get(session=session)
    payment = Payment.objects.get(session=session)
    assert refund_calls(xendit) == [(payment.invoice_id, 15000, "CANCELLATION", str(refund.pk))]
    assert ledger(session) == [("earning", 0, 0, 70, 0, 15)]
    assert session.events.get(kind="ended").data == {"reason": "staff_ended", "fault": "mitra"}
    assert_balanced(session, paid=15000, refunded=15000, mitra=0, platform=0)


def test_it_reverses_earnings_when_finance_refunds_after_the_end(active, xendit, post_callback, make_staff):
    session, mitra = active("curhat-30")
    lifecycle.session_end(
        session_id=session.id, actor=session.client, now=session.accepted_at + timedelta(minutes=20)
    )
    assert ledger(session) == [("earning", 17500, 7500, 70, 20, 30)]

    finance = make_staff("finance")
    refund = settlement.session_refund_by_staff(
        session_id=session.id, actor=finance, amount_idr=10000, note="Klien komplain koneksi"
    )
    payment = Payment.objects.get(session=session)
    assert refund_calls(xendit) == [(payment.invoice_id, 10000, "OTHERS", str(refund.pk))]
    # the client keeps paying 15000: the Bestie's 70% of it is 10500, so 7000 is reversed
    assert ledger(session)[1:] == [("reversal", -7000, -3000, 70, 0, 0)]
    assert_balanced(session, paid=25000, refunded=10000, mitra=10500, platform=4500)

    # Xendit fails the refund: the money stays with the client's payment, the reversal is undone
    failed = xendit.refund_callback(str(refund.pk), status="FAILED")
    assert post_callback(failed, path="/webhooks/xendit/refund").json()["outcome"] == "applied"
    assert ledger(session)[2:] == [("correction", 7000, 3000, 70, 0, 0)]
    assert_balanced(session, paid=25000, refunded=0, mitra=17500, platform=7500)

    # tried again: a new refund with a new idempotency key, reversed again
    from payments.services import refund_retry

    again = refund_retry(refund=Refund.objects.get(pk=refund.pk), actor=finance)
    assert again.pk != refund.pk and again.retry_of_id == refund.pk
    assert refund_calls(xendit)[1:] == [(payment.invoice_id, 10000, "OTHERS", str(again.pk))]
    assert ledger(session)[3:] == [("reversal", -7000, -3000, 70, 0, 0)]
    assert_balanced(session, paid=25000, refunded=10000, mitra=10500, platform=4500)
    assert sum(EarningsEntry.objects.filter(mitra=mitra).values_list("amount_idr", flat=True)) == 10500


def test_it_refunds_unserved_extension_minutes_when_the_mitra_ends_early(active, xendit, post_callback):
    session, mitra = active("curhat-15")
    extension = lifecycle.session_extension_request(
        session_id=session.id, client=session.client, package_code="curhat-30"
    )
    assert post_callback(xendit.paid_callback(extension.invoice_id)).json()["outcome"] == "applied"
    session.refresh_from_db()
    assert (session.extended_seconds, session.extensions_total_idr) == (1800, 25000)

    lifecycle.session_end(
        session_id=session.id, actor=mitra.user, now=session.accepted_at + timedelta(minutes=20)
    )
    # 45 minutes paid for 40000, 20 served: ceil(40000 × 25/45) = 22223 back, oldest payment first
    assert refunds(session) == [(15000, "unserved_minutes"), (7223, "unserved_minutes")]
    first, second = Refund.objects.filter(session=session).order_by("amount_idr").reverse()
    session_payment = Payment.objects.get(session=session, kind="session")
    assert refund_calls(xendit) == [
        (session_payment.invoice_id, 15000, "CANCELLATION", str(first.pk)),
        (extension.invoice_id, 7223, "CANCELLATION", str(second.pk)),
    ]
    assert ledger(session) == [("earning", 12443, 5334, 70, 20, 45)]
    assert_balanced(session, paid=40000, refunded=22223, mitra=12443, platform=5334)


def test_it_follows_the_runtime_config_for_a_client_fault_end_and_a_package_share(active, xendit, make_staff):
    from halobestie.runtime.services import runtime_config_update

    staff = make_staff("admin")
    full, _ = active("curhat-15")
    lifecycle.session_end(
        session_id=full.id, actor=staff, fault="client", now=full.accepted_at + timedelta(minutes=3)
    )
    assert ledger(full) == [("earning", 10500, 4500, 70, 3, 15)] and refunds(full) == []

    runtime_config_update(
        values={
            "client_fault_end_policy": "served",
            "packages": [
                {"code": "curhat-15", "name": "Curhat 15 menit", "duration_minutes": 15, "price_idr": 15000,
                 "mitra_share_percent": 80},
            ],
        },
        actor=staff,
    )  # fmt: skip
    served, _ = active("curhat-15")
    lifecycle.session_end(
        session_id=served.id, actor=staff, fault="client", now=served.accepted_at + timedelta(minutes=3)
    )
    assert refunds(served) == [(12000, "unserved_minutes")]
    assert ledger(served) == [("earning", 2400, 600, 80, 3, 15)]
    assert_balanced(served, paid=15000, refunded=12000, mitra=2400, platform=600)


def test_it_settles_the_same_whichever_of_a_staff_refund_and_a_mitra_end_comes_first(
    active, xendit, make_staff
):
    import threading

    from django.db import connection

    finance = make_staff("finance")
    for _ in range(3):
        session, mitra = active("curhat-15")
        barrier, outcomes = threading.Barrier(2), []

        def end(session=session, mitra=mitra):
            barrier.wait()
            lifecycle.session_end(
                session_id=session.id, actor=mitra.user, now=session.accepted_at + timedelta(minutes=3)
            )
            outcomes.append("ended")

        def refund(session=session):
            barrier.wait()
            try:
                settlement.session_refund_by_staff(
                    session_id=session.id, actor=finance, amount_idr=5000, note="x"
                )
                outcomes.append("refunded")
            except ServiceError as error:
                outcomes.append(error.code)

        threads = [threading.Thread(target=lambda f=f: (f(), connection.close())) for f in (end, refund)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) in (["ended", "refunded"], ["ended", "invalid_refund_amount"])
        # either the refund came first (5000 + 7000 unserved back) or the end (12000; 5000 > the 3000 left)
        assert sum(amount for amount, _ in refunds(session)) == 12000
        assert ledger(session) == [("earning", 2100, 900, 70, 3, 15)]
        assert_balanced(session, paid=15000, refunded=12000, mitra=2100, platform=900)
        mitra_set_online(mitra=mitra, is_online=False)
