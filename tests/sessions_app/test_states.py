"""Every legal transition through the services; illegal ones answer 409 and change nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from halobestie.errors import Conflict
from payments.services import local_checkout_complete
from sessions_app import lifecycle, timers
from sessions_app.models import ChatSession, EarningsEntry, OfferOutcome, SessionOffer, Status
from tests.conftest import auth_client


def snapshot(session):
    row = ChatSession.objects.values().get(pk=session.pk)
    row.pop("updated_at")
    return row


def test_it_walks_pending_to_matching_to_offered_to_active_to_ended(make_client_user, online_mitra):
    client = make_client_user()
    mitra = online_mitra()
    session = lifecycle.session_create(client=client, package_code="curhat-30")
    assert session.status == Status.PENDING_PAYMENT
    assert session.price_idr == 25000 and session.duration_seconds == 1800

    lifecycle.session_mark_paid(session_id=session.id)
    session.refresh_from_db()
    assert session.status == Status.OFFERED  # dispatched at once to the free mitra
    assert session.mitra_id == mitra.id

    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    assert session.status == Status.ACTIVE
    assert session.ends_at == session.accepted_at + timedelta(minutes=30)

    lifecycle.session_end(session_id=session.id, actor=client)
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.ENDED, "client_ended")
    entry = EarningsEntry.objects.get(session=session)
    assert (entry.amount_idr, entry.share_percent) == (17500, 70)


def test_it_cancels_an_unpaid_session(make_client_user):
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_cancel_unpaid(session_id=session.id)
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.CANCELLED, "payment_expired")


def test_it_returns_a_declined_offer_to_matching_and_offers_the_next_mitra(paid_session, online_mitra):
    first = online_mitra()
    session = paid_session()
    assert session.mitra_id == first.id
    second = online_mitra()
    lifecycle.session_decline(session_id=session.id, mitra=first)
    session.refresh_from_db()
    assert session.status == Status.OFFERED
    assert session.mitra_id == second.id
    assert SessionOffer.objects.get(session=session, mitra=first).outcome == OfferOutcome.DECLINED


def test_it_keeps_a_declined_session_waiting_when_nobody_else_is_free(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_decline(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    assert session.mitra_id is None


def test_it_expires_an_offer_and_ends_unmatched_after_the_matching_window(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    later = timezone.now() + timedelta(seconds=61)
    assert timers.offers_expire_due(now=later) == 1
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    assert SessionOffer.objects.get(session=session, mitra=mitra).outcome == OfferOutcome.EXPIRED

    assert timers.matching_expire_due(now=later + timedelta(seconds=600)) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.UNMATCHED, "no_mitra")
    from payments.models import Refund

    refund = Refund.objects.get(session=session)
    assert refund.amount_idr == 25000


def test_it_ends_at_ends_at_and_warns_before(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session(package="curhat-15")
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    assert timers.sessions_warn_ending_soon(now=session.ends_at - timedelta(seconds=121)) == 0
    assert timers.sessions_warn_ending_soon(now=session.ends_at - timedelta(seconds=119)) == 1
    assert timers.sessions_warn_ending_soon(now=session.ends_at - timedelta(seconds=100)) == 0
    assert timers.sessions_end_due(now=session.ends_at - timedelta(seconds=1)) == 0
    assert timers.sessions_end_due(now=session.ends_at) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.ENDED, "expired")


def test_it_ends_a_session_whose_mitra_is_lost_after_the_grace(paid_session, online_mitra):
    from mitras.services import mitra_heartbeat

    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    start = timezone.now()
    mitra_heartbeat(mitra=mitra, now=start)
    # heartbeats stop: past the heartbeat TTL (30 s) both sides are told
    lapsed_at = start + timedelta(seconds=31)
    assert timers.sessions_check_mitra_presence(now=lapsed_at) == 1
    session.refresh_from_db()
    assert session.mitra_lost_at == lapsed_at and session.status == Status.ACTIVE
    # back within the grace: the session goes on
    mitra_heartbeat(mitra=mitra, now=start + timedelta(seconds=40))
    assert timers.sessions_check_mitra_presence(now=start + timedelta(seconds=41)) == 1
    session.refresh_from_db()
    assert session.mitra_lost_at is None
    # gone for longer than the grace (120 s): ended; the Bestie served 1 minute (until the
    # presence lapsed at 71 s), the client gets the other 29 of 30 back at once
    gone_at = start + timedelta(seconds=71)
    assert timers.sessions_check_mitra_presence(now=gone_at) == 1
    assert timers.sessions_check_mitra_presence(now=gone_at + timedelta(seconds=119)) == 0
    assert timers.sessions_check_mitra_presence(now=gone_at + timedelta(seconds=121)) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason, session.needs_refund_review) == (
        Status.ENDED,
        "mitra_lost",
        False,
    )
    assert list(session.refunds.values_list("amount_idr", "reason")) == [(24167, "unserved_minutes")]
    entries = EarningsEntry.objects.filter(session=session)
    assert list(entries.values_list("amount_idr", "served_minutes")) == [(583, 1)]


def test_it_keeps_the_chats_of_a_mitra_who_switches_off_new_offers(paid_session, online_mitra):
    from mitras.services import mitra_heartbeat, mitra_set_online

    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    mitra_set_online(mitra=mitra, is_online=False)  # "no new offers", the app still alive
    now = timezone.now()
    mitra_heartbeat(mitra=mitra, now=now)
    assert timers.sessions_check_mitra_presence(now=now + timedelta(seconds=5)) == 0
    session.refresh_from_db()
    assert (session.status, session.mitra_lost_at) == (Status.ACTIVE, None)


def test_it_gives_a_late_payment_the_whole_matching_window(make_client_user):
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    # the gateway says it was paid 20 minutes ago (a lost callback reconciled late)
    lifecycle.session_mark_paid(session_id=session.id, paid_at=timezone.now() - timedelta(minutes=20))
    assert timers.matching_expire_due(now=timezone.now() + timedelta(seconds=5)) == 0
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    assert timers.matching_expire_due(now=timezone.now() + timedelta(seconds=601)) == 1


def test_it_refunds_a_paid_session_the_client_cancels_before_it_starts(paid_session):
    from payments.models import Refund

    session = paid_session()
    assert session.status == Status.MATCHING
    lifecycle.session_end(session_id=session.id, actor=session.client)
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.CANCELLED, "client_cancelled")
    assert Refund.objects.get(session=session).amount_idr == 25000


@pytest.mark.parametrize(
    "action",
    ["mark_paid", "accept", "decline", "cancel_unpaid", "rate"],
)
def test_it_refuses_illegal_transitions_and_changes_nothing(action, paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    lifecycle.session_end(session_id=session.id, actor=mitra.user)
    session.refresh_from_db()
    before = snapshot(session)
    calls = {
        "mark_paid": lambda: lifecycle.session_mark_paid(session_id=session.id),
        "accept": lambda: lifecycle.session_accept(session_id=session.id, mitra=mitra),
        "decline": lambda: lifecycle.session_decline(session_id=session.id, mitra=mitra),
        "cancel_unpaid": lambda: lifecycle.session_cancel_unpaid(session_id=session.id),
        "rate": None,
    }
    if action == "rate":
        lifecycle.session_rate(session_id=session.id, client=session.client, score=5)
        before = snapshot(session)
        with pytest.raises(Conflict) as error:
            lifecycle.session_rate(session_id=session.id, client=session.client, score=4)
        assert error.value.code == "already_rated"
    else:
        with pytest.raises(Conflict) as error:
            calls[action]()
        assert error.value.status_code == 409
    assert snapshot(session) == before


def test_it_answers_409_in_the_envelope_over_http(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    response = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/accept")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "offer_not_available"
    end_twice = auth_client(session.client)
    assert end_twice.post(f"/api/v1/sessions/{session.id}/end").status_code == 200
    again = end_twice.post(f"/api/v1/sessions/{session.id}/end")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "illegal_transition"


def test_it_allows_one_open_session_per_client(make_client_user):
    client = make_client_user()
    lifecycle.session_create(client=client, package_code="curhat-15")
    with pytest.raises(Conflict) as error:
        lifecycle.session_create(client=client, package_code="curhat-15")
    assert error.value.code == "session_already_open"
    assert ChatSession.objects.filter(client=client).count() == 1


def test_it_moves_ends_at_when_an_extension_is_paid(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session(package="curhat-15")
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()
    ends_at = session.ends_at
    payment = lifecycle.session_extension_request(
        session_id=session.id, client=session.client, package_code="curhat-30"
    )
    assert payment.kind == "extension" and payment.amount_idr == 25000
    local_checkout_complete(external_id=payment.external_id, is_paid=True)  # the real callback path
    session.refresh_from_db()
    assert session.ends_at == ends_at + timedelta(minutes=30)
    assert session.extensions_total_idr == 25000
    lifecycle.session_end(session_id=session.id, actor=session.client)
    assert EarningsEntry.objects.get(session=session).amount_idr == (15000 + 25000) * 70 // 100


def test_it_ends_the_open_session_of_a_client_who_erases_the_account(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    response = auth_client(session.client).delete("/api/v1/me")
    assert response.status_code in (200, 204)
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.ENDED, "account_deleted")


def test_it_refunds_the_waiting_session_of_a_client_who_erases_the_account(paid_session):
    from payments.models import Refund

    session = paid_session()
    assert session.status == Status.MATCHING
    auth_client(session.client).delete("/api/v1/me")
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.CANCELLED, "account_deleted")
    assert Refund.objects.get(session=session).amount_idr == 25000
