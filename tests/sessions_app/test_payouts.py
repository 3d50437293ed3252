"""Payout periods: one line per Bestie, the CSV, recording a period paid (audited, once), and a
paid period locked (later rows land in the next one)."""

import threading
from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from halobestie.audit.models import AuditEntry
from halobestie.errors import Conflict, ServiceError
from sessions_app import lifecycle, payouts, settlement
from sessions_app.models import EarningsEntry, PayoutBatch


@pytest.fixture
def ended(paid_session, online_mitra):
    """A session accepted by a fresh mitra and ended by `who` after `minutes`."""

    def make(*, package, minutes, who="client", name):
        mitra = online_mitra(display_name=name)
        session = paid_session(package=package)
        assert session.mitra_id == mitra.id
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        session.refresh_from_db()
        actor = session.client if who == "client" else mitra.user
        lifecycle.session_end(
            session_id=session.id, actor=actor, now=session.accepted_at + timedelta(minutes=minutes)
        )
        return session, mitra

    return make


def test_it_exports_the_period_pays_it_once_and_books_later_reversals_into_the_next(ended, make_staff):
    first, alpha = ended(package="curhat-30", minutes=20, name="Bestie Alpha")
    second, beta = ended(package="curhat-15", minutes=5, who="mitra", name="Bestie Beta")
    period = payouts.period_of(timezone.now())
    assert set(EarningsEntry.objects.values_list("period", flat=True)) == {period}

    month = f"{period:%Y-%m}"
    assert payouts.payout_csv(period=period) == (
        "period,mitra_id,display_name,phone,sessions,entries_idr,reversals_idr,total_idr\n"
        f"{month},{alpha.id},Bestie Alpha,{alpha.user.phone},1,17500,0,17500\n"
        f"{month},{beta.id},Bestie Beta,{beta.user.phone},1,3500,0,3500\n"
    )

    finance = make_staff("finance")
    batch = payouts.payout_batch_record(period=period, actor=finance, reference="BCA-TRF-0001")
    assert (batch.total_idr, batch.entries_idr, batch.reversals_idr, batch.mitra_count) == (
        21000,
        21000,
        0,
        2,
    )
    assert batch.lines == payouts.payout_lines(period=period)
    audit = AuditEntry.objects.get(action="payout_paid")
    assert (audit.actor_id, audit.after) == (
        finance.id, {"period": month, "total_idr": 21000, "mitra_count": 2, "reference": "BCA-TRF-0001"},
    )  # fmt: skip
    with pytest.raises(Conflict) as error:
        payouts.payout_batch_record(period=period, actor=finance, reference="again")
    assert error.value.code == "period_already_paid"

    # the period is locked: a refund now reverses into the next period, the paid one stays as paid
    settlement.session_refund_by_staff(session_id=first.id, actor=finance, amount_idr=5000, note="komplain")
    reversal = EarningsEntry.objects.get(session=first, kind="reversal")
    following = payouts.next_period(period)
    assert (reversal.amount_idr, reversal.period) == (-3500, following)
    assert payouts.payout_lines(period=period) == batch.lines
    assert payouts.payout_lines(period=following) == [
        {
            "period": f"{following:%Y-%m}", "mitra_id": alpha.id, "display_name": "Bestie Alpha",
            "phone": alpha.user.phone, "sessions": 0, "entries_idr": 0, "reversals_idr": -3500,
            "total_idr": -3500,
        }
    ]  # fmt: skip
    # and so does a session ending now
    third, _ = ended(package="curhat-15", minutes=15, name="Bestie Gamma")
    assert EarningsEntry.objects.get(session=third).period == following


def test_it_refuses_a_payout_without_reference_in_the_future_or_with_nothing_to_pay(ended, make_staff):
    ended(package="curhat-15", minutes=15, name="Bestie Alpha")
    finance = make_staff("finance")
    period = payouts.period_of(timezone.now())
    cases = [
        (period, "", "validation_error"),
        (payouts.next_period(period), "TRF", "period_not_started"),
        (date(2020, 1, 1), "TRF", "nothing_to_pay"),
    ]
    for month, reference, code in cases:
        with pytest.raises(ServiceError) as error:
            payouts.payout_batch_record(period=month, actor=finance, reference=reference)
        assert error.value.code == code
    assert PayoutBatch.objects.count() == 0 and AuditEntry.objects.filter(action="payout_paid").count() == 0
    with pytest.raises(ServiceError) as error:
        payouts.parse_period("2026-13")
    assert error.value.code == "invalid_period"


def test_it_records_a_period_once_when_two_clicks_race(ended, make_staff):
    ended(package="curhat-15", minutes=15, name="Bestie Alpha")
    finance = make_staff("finance")
    period = payouts.period_of(timezone.now())
    barrier, results = threading.Barrier(2), []

    def click():
        try:
            barrier.wait()
            payouts.payout_batch_record(period=period, actor=finance, reference="TRF")
            results.append("ok")
        except Conflict as error:
            results.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "period_already_paid"]
    assert PayoutBatch.objects.count() == 1
