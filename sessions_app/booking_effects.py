"""The booking side of session state changes that happen below the booking services: a booked
session's payment (session_mark_paid) and its Bestie's absence (back_to_matching). Lives below
lifecycle and matching so they can call it; the booking services are in sessions_app/bookings.py.
"""

from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from halobestie.errors import Conflict
from halobestie.integrations import push
from mitras.models import Mitra
from sessions_app import events
from sessions_app.booking_slots import overlaps_other_booking
from sessions_app.effects import notify_updated, record
from sessions_app.models import Booking, Status

_JAKARTA = ZoneInfo("Asia/Jakarta")


def jakarta_text(instant) -> str:
    """'01/12 19:00 WIB', for pushes."""
    return timezone.localtime(instant, timezone=_JAKARTA).strftime("%d/%m %H:%M WIB")


def booking_state(booking) -> str:
    """The booking's state for the apps, from its session's status (module docstring)."""
    status = booking.session.status
    if status == Status.PENDING_PAYMENT:
        return "held"
    if status == Status.SCHEDULED:
        return "confirmed"
    if status == Status.MATCHING:
        return "mitra_absent" if booking.session.allow_any_mitra is False else "finding_bestie"
    if status in (Status.OFFERED, Status.ACTIVE):
        return "started"
    if status == Status.ENDED:
        return "completed"
    return "cancelled"  # cancelled, unmatched (refunded)


def tell(booking, *, push_client=None, push_mitra=None):
    """After commit: `booking.updated` to both sides; optional pushes (title, body)."""
    booking_id, client_id, mitra_user_id = booking.pk, booking.client_id, booking.mitra.user_id

    def send():
        fresh = Booking.objects.select_related("session", "mitra", "client").filter(pk=booking_id).first()
        if fresh is None:
            return
        frame = {"type": "booking.updated", "booking": booking_payload(fresh)}
        events.send_now([client_id, mitra_user_id], frame)
        data = {"type": "booking.updated", "booking_id": str(booking_id)}
        if push_client:
            push.send_to_user(user_id=client_id, title=push_client[0], body=push_client[1], data=data)
        if push_mitra:
            push.send_to_user(user_id=mitra_user_id, title=push_mitra[0], body=push_mitra[1], data=data)

    transaction.on_commit(send)


def booking_payload(booking) -> dict:
    """What both apps see of a booking (the Bestie sees the client's display name only)."""
    session = booking.session
    return {
        "id": str(booking.id),
        "state": booking_state(booking),
        "session_id": str(session.id),
        "session_status": session.status,
        "mitra": {"id": booking.mitra_id, "display_name": booking.mitra.display_name},
        "client_display_name": booking.client.display_name or "Klien",
        "package_code": session.package_code,
        "duration_minutes": session.duration_seconds // 60,
        "price_idr": session.price_idr,
        "discount_idr": session.discount_idr,
        "starts_at": booking.starts_at.isoformat(),
        "ends_at": booking.ends_at.isoformat(),
        "starts_at_local": timezone.localtime(booking.starts_at, timezone=_JAKARTA).isoformat(),
        "hold_expires_at": booking.hold_expires_at.isoformat()
        if session.status == Status.PENDING_PAYMENT
        else None,
        "mitra_absent_at": booking.mitra_absent_at.isoformat() if booking.mitra_absent_at else None,
        "created_at": booking.created_at.isoformat(),
    }


def booking_mark_paid(session, *, paid_at, now):
    """Precondition: `session` locked, booked and pending payment (session_mark_paid checks). Paid
    in time or late, the booking is confirmed if its time is still free for it: a payment after
    the hold expired confirms only while nobody else took the time meanwhile (else Conflict, and
    the payment side flags and refunds it)."""
    booking = Booking.objects.select_for_update().get(session=session)
    if booking.hold_expires_at <= now:
        Mitra.objects.select_for_update().filter(pk=booking.mitra_id).first()
        if booking.starts_at <= now or overlaps_other_booking(booking, now=now):
            raise Conflict("Waktu pemesanan sudah tidak tersedia.", code="slot_not_available")
    session.status = Status.SCHEDULED
    session.paid_at = paid_at or now
    session.save()
    record(session, "booking_confirmed")
    notify_updated(session)
    tell(
        booking,
        push_client=(
            "Pemesanan terkonfirmasi",
            f"Sesimu dengan {booking.mitra.display_name} pada {jakarta_text(booking.starts_at)}.",
        ),
        push_mitra=("Ada pemesanan baru", f"Sesi terjadwal pada {jakarta_text(booking.starts_at)}."),
    )


def booking_mitra_absent(session, *, now):
    """Precondition: `session` locked, booked, just back in matching (the booked Bestie let the
    grace pass or declined). Only the client decides now: a refund or any Bestie; the matching
    window runs from now and refunds in full if they choose nothing."""
    booking = Booking.objects.select_for_update().select_related("mitra").get(session=session)
    booking.mitra_absent_at = now
    booking.save(update_fields=["mitra_absent_at", "updated_at"])
    session.allow_any_mitra = False
    session.matching_started_at = now
    session.save(update_fields=["allow_any_mitra", "matching_started_at", "updated_at"])
    record(session, "booking_mitra_absent", mitra_id=booking.mitra_id)
    tell(
        booking,
        push_client=(
            "Bestie-mu belum hadir",
            "Pilih: dana kembali penuh, atau lanjut dengan Bestie lain yang tersedia.",
        ),
    )
