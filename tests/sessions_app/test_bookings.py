"""Booked sessions on real PostgreSQL (sessions_app/bookings.py): slots from working hours, holds
that can never be double-booked, payment, reminders through the scheduler, the start, no-shows,
cancel/reschedule windows, and the dispatcher keeping on-demand sessions clear of bookings."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from halobestie.errors import Conflict
from halobestie.runtime.services import runtime_config_update
from mitras.models import WorkingHours
from payments.models import Refund
from sessions_app import booking_effects, bookings, lifecycle
from sessions_app.booking_slots import bookable_starts
from sessions_app.matching import queue_dispatch
from sessions_app.models import Booking, ChatSession, Status
from sessions_app.timers import offers_expire_due
from tests.conftest import auth_client

JAKARTA = ZoneInfo("Asia/Jakarta")

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


def _always_working(mitra):
    WorkingHours.objects.bulk_create(
        WorkingHours(mitra=mitra, weekday=day, start_minute=0, end_minute=1440) for day in range(1, 8)
    )


def _next_slot(hours_ahead=3):
    """A grid point (30 min, from midnight Jakarta) a few hours ahead, past the 1 h lead time."""
    at = timezone.now() + timedelta(hours=hours_ahead)
    return at.replace(minute=0 if at.minute < 30 else 30, second=0, microsecond=0)


def _paid(booking):
    lifecycle.session_mark_paid(session_id=booking.session_id)
    booking.refresh_from_db()
    booking.session.refresh_from_db()
    return booking


@pytest.fixture
def booked_mitra(make_mitra):
    mitra = make_mitra(display_name="Ayu")
    _always_working(mitra)
    return mitra


def test_slots_follow_working_hours_grid_lead_horizon_and_other_bookings(make_client_user, make_mitra):
    mitra = make_mitra()
    # Monday 09:00–12:00 Jakarta only.
    WorkingHours.objects.create(mitra=mitra, weekday=1, start_minute=9 * 60, end_minute=12 * 60)
    from halobestie.runtime.selectors import get_config

    config = get_config()
    now = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)  # Sunday 07:00 WIB
    start, end = now, now + timedelta(days=2)
    starts = bookable_starts(mitra=mitra, duration_seconds=3600, start=start, end=end, now=now, config=config)
    local = [s.astimezone(JAKARTA).strftime("%a %H:%M") for s in starts]
    # 60-minute sessions on a 30-minute grid inside 09:00–12:00: the last starts at 11:00.
    assert local == ["Mon 09:00", "Mon 09:30", "Mon 10:00", "Mon 10:30", "Mon 11:00"]
    # Times round-trip: stored UTC, shown +07:00, no daylight saving.
    assert starts[0] == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert starts[0].astimezone(JAKARTA).isoformat() == "2026-11-30T09:00:00+07:00"

    # A held booking at 10:00 takes 10:00–11:00 plus the 10-minute buffer on each side.
    client = make_client_user()
    session = ChatSession.objects.create(
        client=client,
        requested_mitra=mitra,
        allow_any_mitra=False,
        is_booked=True,
        package_code="x",
        duration_seconds=3600,
        price_idr=50000,
    )
    Booking.objects.create(
        session=session,
        client=client,
        mitra=mitra,
        starts_at=starts[2],
        ends_at=starts[2] + timedelta(hours=1),
        hold_expires_at=now + timedelta(minutes=15),
    )
    starts = bookable_starts(mitra=mitra, duration_seconds=3600, start=start, end=end, now=now, config=config)
    assert [s.astimezone(JAKARTA).strftime("%H:%M") for s in starts] == []  # 09:00+1h+10m > 10:00-10m …
    # … but once the hold expired, the time is free again without any job running.
    later = now + timedelta(minutes=16)
    starts = bookable_starts(
        mitra=mitra, duration_seconds=3600, start=start, end=end, now=later, config=config
    )
    assert len(starts) == 5


def test_twenty_clients_booking_the_same_slot_get_exactly_one(booked_mitra, make_client_user):
    clients = [make_client_user() for _ in range(20)]
    slot = _next_slot()
    results, errors = [], []
    barrier = threading.Barrier(20)

    def book(client):
        try:
            barrier.wait()
            results.append(
                bookings.booking_create(
                    client=client, mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
                )
            )
        except Conflict as error:
            errors.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=book, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert len(results) == 1
    assert errors == ["slot_not_available"] * 19
    assert Booking.objects.filter(mitra=booked_mitra).count() == 1


def test_a_booking_keeps_overlapping_on_demand_offers_away(
    booked_mitra, online_mitra, make_client_user, paid_session
):
    from mitras.services import mitra_set_online

    mitra_set_online(mitra=booked_mitra, is_online=True)
    slot = timezone.now() + timedelta(minutes=70)  # a 30-minute session now would end well before …
    slot = slot.replace(second=0, microsecond=0)
    runtime_config_update(values={"booking_lead_seconds": 0, "booking_slot_minutes": 5})
    slot = slot.replace(minute=slot.minute - slot.minute % 5)
    booking = _paid(
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    assert booking.session.status == Status.SCHEDULED
    # A 30-minute session fits before the booking (ends ≤ start − 10 min buffer): offered.
    short = paid_session(package="curhat-30")
    short.refresh_from_db()
    assert short.status == Status.OFFERED and short.mitra_id == booked_mitra.id
    # A 60-minute session would run into it: not offered to that Bestie, the queue waits.
    long = paid_session(package="curhat-60")
    long.refresh_from_db()
    assert long.status == Status.MATCHING
    queue_dispatch()
    long.refresh_from_db()
    assert long.status == Status.MATCHING
    # Another Bestie without bookings takes it.
    other = online_mitra()
    queue_dispatch()
    long.refresh_from_db()
    assert long.status == Status.OFFERED and long.mitra_id == other.id


def test_unpaid_holds_expire_and_free_the_slot(booked_mitra, make_client_user):
    slot = _next_slot()
    first = bookings.booking_create(
        client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
    )
    with pytest.raises(Conflict):
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    later = timezone.now() + timedelta(minutes=16)
    assert bookings.bookings_expire_holds(now=later) == 1
    first.session.refresh_from_db()
    assert first.session.status == Status.CANCELLED and first.session.end_reason == "hold_expired"
    second = bookings.booking_create(
        client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
    )
    assert second.session.status == Status.PENDING_PAYMENT
    # The first payment arriving late is refused (the payment side flags and refunds it).
    with pytest.raises(Conflict):
        lifecycle.session_mark_paid(session_id=first.session_id)


def test_at_the_start_the_booked_bestie_gets_the_offer_and_accepts(booked_mitra, make_client_user):
    slot = _next_slot()
    booking = _paid(
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    assert bookings.bookings_start_due(now=slot - timedelta(seconds=1)) == 0
    assert bookings.bookings_start_due(now=slot) == 1
    session = ChatSession.objects.get(pk=booking.session_id)
    assert session.status == Status.OFFERED and session.mitra_id == booked_mitra.id
    assert session.offer_expires_at == slot + timedelta(seconds=600)
    lifecycle.session_accept(session_id=session.id, mitra=booked_mitra)
    session.refresh_from_db()
    assert session.status == Status.ACTIVE
    booking.refresh_from_db()
    assert booking_effects.booking_state(booking) == "started"


def test_client_no_show_the_session_runs_and_the_bestie_is_paid(booked_mitra, make_client_user):
    from sessions_app.models import EarningsEntry
    from sessions_app.timers import sessions_end_due

    slot = _next_slot()
    booking = _paid(
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    bookings.bookings_start_due(now=slot)
    lifecycle.session_accept(session_id=booking.session_id, mitra=booked_mitra)
    session = ChatSession.objects.get(pk=booking.session_id)
    sessions_end_due(now=session.ends_at)  # the client never wrote
    session.refresh_from_db()
    assert session.status == Status.ENDED
    earned = sum(EarningsEntry.objects.filter(session=session).values_list("amount_idr", flat=True))
    assert earned == session.price_idr * 70 // 100  # the Bestie's full share (Fair money)
    assert not Refund.objects.filter(session=session).exists()


@pytest.mark.parametrize("choice", ["refund", "fallback"])
def test_bestie_no_show_the_client_chooses_refund_or_any_bestie(
    choice, booked_mitra, online_mitra, make_client_user
):
    client = make_client_user()
    slot = _next_slot()
    booking = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    bookings.bookings_start_due(now=slot)
    other = online_mitra(display_name="Lain")
    offers_expire_due(now=slot + timedelta(seconds=601))  # the grace passed: the Bestie did not come
    booking.refresh_from_db()
    booking.session.refresh_from_db()
    assert booking.mitra_absent_at is not None
    assert booking_effects.booking_state(booking) == "mitra_absent"
    queue_dispatch()  # nobody else is offered it until the client chooses
    booking.session.refresh_from_db()
    assert booking.session.status == Status.MATCHING
    if choice == "refund":
        bookings.booking_cancel_by_client(client=client, booking_id=booking.pk)
        booking.session.refresh_from_db()
        assert booking.session.status == Status.CANCELLED
        assert sum(
            Refund.objects.filter(session=booking.session).values_list("amount_idr", flat=True)
        ) == 45000 or (Refund.objects.filter(session=booking.session).exists())
    else:
        bookings.booking_fallback(client=client, booking_id=booking.pk)
        booking.session.refresh_from_db()
        assert booking.session.status == Status.OFFERED and booking.session.mitra_id == other.id


def test_cancel_and_reschedule_windows(booked_mitra, make_client_user):
    client = make_client_user()
    far = _next_slot(hours_ahead=5)
    booking = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=far, package_code="curhat-30"
        )
    )
    # More than two hours ahead: the client moves it, then cancels with a full refund.
    moved = bookings.booking_reschedule(
        client=client, booking_id=booking.pk, starts_at=far + timedelta(hours=1)
    )
    assert moved.starts_at == far + timedelta(hours=1)
    cancelled = bookings.booking_cancel_by_client(client=client, booking_id=booking.pk)
    assert booking_effects.booking_state(cancelled) == "cancelled"
    refunded = sum(Refund.objects.filter(session_id=booking.session_id).values_list("amount_idr", flat=True))
    assert refunded == booking.session.price_idr

    # Inside the deadline (two hours before): neither.
    near = _next_slot(hours_ahead=2)
    soon = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=near, package_code="curhat-30"
        )
    )
    with pytest.raises(Conflict) as refused:
        bookings.booking_cancel_by_client(client=client, booking_id=soon.pk)
    assert refused.value.code == "booking_change_closed"
    with pytest.raises(Conflict):
        bookings.booking_reschedule(client=client, booking_id=soon.pk, starts_at=far)
    # The Bestie may always cancel, with a full refund.
    bookings.booking_cancel_by_mitra(mitra=booked_mitra, booking_id=soon.pk)
    assert sum(Refund.objects.filter(session_id=soon.session_id).values_list("amount_idr", flat=True)) == (
        soon.session.price_idr
    )


def test_the_api_books_lists_and_hides_the_client_from_the_bestie(booked_mitra, make_client_user):
    client = make_client_user()
    client.display_name = "Rina"
    client.save(update_fields=["display_name"])
    api = auth_client(client)
    answer = api.get(f"/api/v1/mitras/{booked_mitra.id}/slots", {"package": "curhat-30"})
    assert answer.status_code == 200, answer.content
    slot = answer.json()["slots"][0]
    naive = api.get(
        f"/api/v1/mitras/{booked_mitra.id}/slots", {"package": "curhat-30", "from": "2030-01-01T10:00:00"}
    )
    assert naive.status_code == 400 and naive.json()["error"]["code"] == "validation_error"
    assert slot["starts_at_local"].endswith("+07:00")
    created = api.post(
        "/api/v1/bookings",
        {"mitra": booked_mitra.id, "starts_at": slot["starts_at"], "package": "curhat-30"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "held" and body["payment"]["invoice_url"]
    again = api.post(
        "/api/v1/bookings",
        {"mitra": booked_mitra.id, "starts_at": slot["starts_at"], "package": "curhat-30"},
        format="json",
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "slot_not_available"
    # Hostile or wrong input: 400 in the envelope, nothing stored.
    for bad in (
        {"mitra": booked_mitra.id, "starts_at": "2026-13-01T00:00", "package": "curhat-30"},
        {"mitra": booked_mitra.id, "starts_at": "2030-01-01T10:00:00\u0000", "package": "curhat-30"},
        {"mitra": booked_mitra.id, "starts_at": "2026-12-01T10:00:00", "package": "curhat-30"},
        {"mitra": booked_mitra.id, "starts_at": slot["starts_at"], "package": "nope"},
    ):
        answer = api.post("/api/v1/bookings", bad, format="json")
        assert 400 <= answer.status_code < 500, (bad, answer.content)
    assert Booking.objects.count() == 1
    _paid(Booking.objects.get())
    mine = auth_client(booked_mitra.user).get("/api/v1/mitra/bookings")
    assert mine.status_code == 200
    [row] = mine.json()["results"]
    assert row["client_display_name"] == "Rina" and row["state"] == "confirmed"
    assert client.phone not in str(row) and not {"client", "client_id", "phone"} & set(row)


def test_support_moves_and_cancels_a_booking_in_the_control_center_audited(
    booked_mitra, make_client_user, make_staff, internal_client
):
    from halobestie.audit.models import AuditEntry

    client = make_client_user()
    slot = _next_slot(hours_ahead=4)
    booking = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    internal_client.force_login(make_staff("support"))
    url = f"/admin/sessions_app/booking/{booking.pk}/change/"
    page = internal_client.get(url)
    assert page.status_code == 200
    assert internal_client.get("/admin/sessions_app/booking/").status_code == 200
    new_local = (slot + timedelta(hours=1)).astimezone(JAKARTA)
    form = {
        "starts_at_0": new_local.strftime("%Y-%m-%d"),
        "starts_at_1": new_local.strftime("%H:%M:%S"),
        "note": "",
    }
    answer = internal_client.post(url, form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    booking.refresh_from_db()
    assert booking.starts_at == slot + timedelta(hours=1)
    assert AuditEntry.objects.filter(action="booking.move", object_id=str(booking.pk)).count() == 1

    form = {**form, "cancel": "on", "note": "Bestie sakit"}
    answer = internal_client.post(url, form)
    assert answer.status_code == 302
    booking.session.refresh_from_db()
    assert booking.session.status == Status.CANCELLED and booking.session.end_reason == "staff_cancelled"
    assert sum(Refund.objects.filter(session=booking.session).values_list("amount_idr", flat=True)) == 25000
    assert AuditEntry.objects.filter(action="booking.cancel", object_id=str(booking.pk)).count() == 1


def test_slots_from_the_last_week_of_year_9999_is_a_400_not_a_500(booked_mitra):
    # `to` defaults to `from` + 7 days, which does not exist after 9999-12-24.
    answer = auth_client(booked_mitra.user).get(
        f"/api/v1/mitras/{booked_mitra.id}/slots", {"package": "curhat-30", "from": "9999-12-31T00:00:00Z"}
    )
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "invalid_range"


def test_the_client_cannot_cancel_a_started_booking_through_the_session_end_route(
    booked_mitra, make_client_user
):
    # After the change deadline the no-show rule applies (docs/payments.md): POST
    # /sessions/{id}/end on the booked session must not cancel it with a full refund.
    client = make_client_user()
    slot = _next_slot()
    booking = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    bookings.bookings_start_due(now=slot)
    api = auth_client(client)
    answer = api.post(f"/api/v1/sessions/{booking.session_id}/end")
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["code"] == "use_booking_cancel"
    booking.session.refresh_from_db()
    assert booking.session.status == Status.OFFERED
    assert not Refund.objects.filter(session=booking.session).exists()
    # The Bestie did not come: then ending it is the full refund the client is owed.
    offers_expire_due(now=slot + timedelta(seconds=601))
    assert api.post(f"/api/v1/sessions/{booking.session_id}/end").status_code == 200
    booking.session.refresh_from_db()
    assert booking.session.status == Status.CANCELLED


def test_an_on_demand_offer_accepted_at_its_last_moment_still_ends_before_the_booking(
    booked_mitra, make_client_user, paid_session
):
    # An on-demand session's time starts at the accept, up to offer_timeout_seconds after the
    # offer: with no buffer, a 60-minute session offered 65+ minutes before a booking could run
    # 25 minutes into it when accepted at the end of a 30-minute offer.
    from mitras.services import mitra_set_online

    mitra_set_online(mitra=booked_mitra, is_online=True)
    runtime_config_update(
        values={
            "booking_lead_seconds": 0,
            "booking_slot_minutes": 5,
            "booking_buffer_minutes": 0,
            "offer_timeout_seconds": 1800,
        }
    )
    slot = (timezone.now() + timedelta(minutes=70)).replace(second=0, microsecond=0)
    slot = slot.replace(minute=slot.minute - slot.minute % 5)
    _paid(
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    long = paid_session(package="curhat-60")
    long.refresh_from_db()
    assert long.status == Status.MATCHING


def test_deactivating_a_bestie_cancels_and_refunds_their_bookings_ahead(
    booked_mitra, make_client_user, make_staff
):
    from mitras.services import mitra_deactivate

    paid = _paid(
        bookings.booking_create(
            client=make_client_user(),
            mitra_id=booked_mitra.id,
            starts_at=_next_slot(3),
            package_code="curhat-30",
        )
    )
    held = bookings.booking_create(
        client=make_client_user(), mitra_id=booked_mitra.id, starts_at=_next_slot(5), package_code="curhat-30"
    )
    mitra_deactivate(mitra=booked_mitra, actor=make_staff("admin"))
    for booking in (paid, held):
        booking.session.refresh_from_db()
        assert booking.session.status == Status.CANCELLED
    assert Refund.objects.filter(session=paid.session).exists()
    # Nothing is offered to the deactivated Bestie at the start.
    assert bookings.bookings_start_due(now=_next_slot(3)) == 0


def test_deleting_the_account_cancels_and_refunds_the_clients_bookings_ahead(booked_mitra, make_client_user):
    client = make_client_user()
    paid = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=_next_slot(3), package_code="curhat-30"
        )
    )
    held = bookings.booking_create(
        client=client, mitra_id=booked_mitra.id, starts_at=_next_slot(5), package_code="curhat-30"
    )

    response = auth_client(client).delete("/api/v1/me")
    assert response.status_code in (200, 204)

    for booking in (paid, held):
        booking.session.refresh_from_db()
        assert (booking.session.status, booking.session.end_reason) == (Status.CANCELLED, "account_deleted")
    assert Refund.objects.filter(session=paid.session).exists()
    assert not Refund.objects.filter(session=held.session).exists()
    # The time is free again for somebody else, and nothing starts for the client who is gone.
    assert bookings.bookings_start_due(now=_next_slot(3)) == 0
    other = bookings.booking_create(
        client=make_client_user(), mitra_id=booked_mitra.id, starts_at=_next_slot(3), package_code="curhat-30"
    )
    assert other.session.status == Status.PENDING_PAYMENT


def test_an_extension_may_not_run_into_the_besties_next_booking(booked_mitra, make_client_user, paid_session):
    from mitras.services import mitra_set_online
    from payments.services import local_checkout_complete

    mitra_set_online(mitra=booked_mitra, is_online=True)
    runtime_config_update(values={"booking_lead_seconds": 0, "booking_slot_minutes": 5})
    session = paid_session(package="curhat-15")
    lifecycle.session_accept(session_id=session.id, mitra=booked_mitra)
    session.refresh_from_db()
    # An extension asked before any booking exists is fine …
    early = lifecycle.session_extension_request(
        session_id=session.id, client=session.client, package_code="curhat-30"
    )
    # … then somebody books the Bestie 30 minutes after this session's end (the buffer is 10).
    slot = (session.ends_at + timedelta(minutes=35)).replace(second=0, microsecond=0)
    slot = slot.replace(minute=slot.minute - slot.minute % 5)
    _paid(
        bookings.booking_create(
            client=make_client_user(), mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    ends_at = session.ends_at

    # Asking now: 409, nothing to pay.
    with pytest.raises(Conflict) as refused:
        lifecycle.session_extension_request(
            session_id=session.id, client=session.client, package_code="curhat-30"
        )
    assert refused.value.code == "extension_blocked_by_booking"
    # Paying the early invoice now: the money goes back, the session keeps its end.
    local_checkout_complete(external_id=early.external_id, is_paid=True)
    session.refresh_from_db()
    assert session.ends_at == ends_at
    assert Refund.objects.filter(session=session, payment__external_id=early.external_id).exists()
    # A short extension that still ends before the booking (less the buffer) is allowed.
    assert (
        lifecycle.session_extension_request(
            session_id=session.id, client=session.client, package_code="curhat-15"
        ).amount_idr
        > 0
    )
