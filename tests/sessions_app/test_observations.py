"""The matching metrics move with the decisions, after commit: queue wait per offer, offer
outcomes and response time, matching outcomes, refunds created."""

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from halobestie.errors import Conflict
from sessions_app import lifecycle, timers
from sessions_app.models import OfferOutcome, SessionOffer, Status

METRICS = (
    ("halobestie_queue_wait_seconds_count", {}),
    ("halobestie_queue_wait_seconds_sum", {}),
    ("halobestie_session_assignments_total", {}),
    ("halobestie_offer_response_seconds_count", {"outcome": "accepted"}),
    ("halobestie_offer_response_seconds_sum", {"outcome": "accepted"}),
    ("halobestie_offer_response_seconds_count", {"outcome": "declined"}),
    ("halobestie_offer_outcomes_total", {"outcome": "accepted"}),
    ("halobestie_offer_outcomes_total", {"outcome": "declined"}),
    ("halobestie_offer_outcomes_total", {"outcome": "expired"}),
    ("halobestie_offer_outcomes_total", {"outcome": "withdrawn"}),
    ("halobestie_matching_outcomes_total", {"outcome": "matched"}),
    ("halobestie_matching_outcomes_total", {"outcome": "unmatched"}),
    ("halobestie_matching_outcomes_total", {"outcome": "cancelled"}),
    ("halobestie_refunds_total", {"outcome": "created"}),
)


@pytest.fixture
def moved():
    """What each metric moved by since the fixture was taken: {(name, outcome): change}, zeros left out."""

    def snapshot():
        return {
            (name, labels.get("outcome")): REGISTRY.get_sample_value(name, labels) or 0.0
            for name, labels in METRICS
        }

    before = snapshot()

    def changes():
        after = snapshot()
        return {key: after[key] - before[key] for key in after if after[key] != before[key]}

    return changes


def test_it_measures_the_queue_wait_and_the_answer_of_an_accepted_offer(online_mitra, paid_session, moved):
    mitra = online_mitra()
    session = paid_session()  # dispatched after commit: offered to the only mitra online
    session.refresh_from_db()
    assert session.status == Status.OFFERED
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    offer = SessionOffer.objects.get(session=session)

    waited = (session.offered_at - session.matching_started_at).total_seconds()
    answered = (offer.responded_at - offer.offered_at).total_seconds()
    assert moved() == {
        ("halobestie_queue_wait_seconds_count", None): 1.0,
        ("halobestie_queue_wait_seconds_sum", None): pytest.approx(waited),
        ("halobestie_session_assignments_total", None): 1.0,
        ("halobestie_offer_response_seconds_count", "accepted"): 1.0,
        ("halobestie_offer_response_seconds_sum", "accepted"): pytest.approx(answered),
        ("halobestie_offer_outcomes_total", "accepted"): 1.0,
        ("halobestie_matching_outcomes_total", "matched"): 1.0,
    }


def test_it_counts_declined_and_expired_offers_and_an_unmatched_session(online_mitra, paid_session, moved):
    first, second = online_mitra(), online_mitra()
    session = paid_session()
    session.refresh_from_db()
    offered_to = first if session.mitra_id == first.id else second
    lifecycle.session_decline(session_id=session.id, mitra=offered_to)
    session.refresh_from_db()
    assert session.status == Status.OFFERED  # the other mitra got it at once
    timers.offers_expire_due(now=session.offer_expires_at + timedelta(seconds=1))
    timers.matching_expire_due(now=session.matching_started_at + timedelta(days=1))
    session.refresh_from_db()
    assert session.status == Status.UNMATCHED

    assert moved() == {
        ("halobestie_queue_wait_seconds_count", None): 2.0,
        ("halobestie_queue_wait_seconds_sum", None): pytest.approx(
            sum(
                (offer.offered_at - session.matching_started_at).total_seconds()
                for offer in SessionOffer.objects.filter(session=session)
            )
        ),
        ("halobestie_session_assignments_total", None): 2.0,
        ("halobestie_offer_response_seconds_count", "declined"): 1.0,
        ("halobestie_offer_outcomes_total", "declined"): 1.0,
        ("halobestie_offer_outcomes_total", "expired"): 1.0,
        ("halobestie_matching_outcomes_total", "unmatched"): 1.0,
        ("halobestie_refunds_total", "created"): 1.0,
    }
    assert sorted(SessionOffer.objects.filter(session=session).values_list("outcome", flat=True)) == [
        OfferOutcome.DECLINED,
        OfferOutcome.EXPIRED,
    ]


def test_it_counts_a_session_cancelled_in_the_queue_and_its_withdrawn_offer(
    online_mitra, paid_session, moved
):
    online_mitra()
    session = paid_session()
    lifecycle.session_end(session_id=session.id, actor=session.client)

    changes = moved()
    assert changes.pop(("halobestie_queue_wait_seconds_sum", None), 0.0) >= 0
    assert changes == {
        ("halobestie_queue_wait_seconds_count", None): 1.0,
        ("halobestie_session_assignments_total", None): 1.0,
        ("halobestie_offer_outcomes_total", "withdrawn"): 1.0,
        ("halobestie_matching_outcomes_total", "cancelled"): 1.0,
        ("halobestie_refunds_total", "created"): 1.0,
    }


def test_it_counts_nothing_when_the_decision_is_refused(online_mitra, paid_session, moved):
    mitra, stranger = online_mitra(), online_mitra()
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    before = moved()

    with pytest.raises(Conflict, match="Tawaran ini sudah tidak berlaku"):
        lifecycle.session_accept(session_id=session.id, mitra=stranger)

    assert moved() == before
