"""Booked sessions: a client reserves a time with one Bestie, pays ahead, and both are reminded.

A booking is a `Booking` row and its own chat session (`is_booked`), whose status is the one
truth of where the booking stands:

    pending_payment  held: the time is the client's until `hold_expires_at`, an invoice is open
    scheduled        paid and confirmed; reminders go out before `starts_at`
    offered          the start time came: offered to the booked Bestie until start + grace
    active / ended   as any session (the Bestie is paid per Fair money, settlement.py)
    matching         the booked Bestie let the grace pass or declined (`mitra_absent_at`): the
                     client chooses a full refund or any available Bestie; choosing nothing, the
                     matching window runs out and refunds in full
    cancelled        hold expired, or cancelled by the client (in time), the Bestie or staff

Concurrency: every decision that gives a time to a client is made under the Bestie's row lock
(the same lock the dispatcher takes on its candidates), so two clients can never hold or book the
same time, and an on-demand offer that would run into a booking is never made
(`booking_slots.next_booking_starts`, used by the dispatcher under that lock).

Client no-show: the session is offered at the start; once the Bestie accepts, it runs its booked
length whether or not the client writes, and the Bestie earns their full share when it ends.
Rules and refunds: docs/payments.md; frames: docs/realtime.md.
"""

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from halobestie.errors import Conflict, NotFound, ServiceError
from halobestie.integrations import push
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from payments.models import Payment, PaymentStatus
from payments.services import InvoiceInfo, invoice_cancel_quietly, invoice_open
from promotions import services as promotions
from sessions_app import blocking
from sessions_app.booking_effects import jakarta_text, tell
from sessions_app.booking_slots import is_bookable
from sessions_app.effects import notify_updated, record
from sessions_app.lifecycle import _cancel, _payment_for, _voucher_data, lock_session
from sessions_app.matching import dispatch_after_commit, offer_booked
from sessions_app.models import Booking, ChatSession, EndReason, Status

logger = logging.getLogger(__name__)


class BookingNotFound(NotFound):
    code = "booking_not_found"
    detail = "Pemesanan tidak ditemukan."


class SlotTaken(Conflict):
    code = "slot_not_available"
    detail = "Waktu itu tidak tersedia. Pilih waktu lain."


class ChangeClosed(Conflict):
    code = "booking_change_closed"
    detail = "Pemesanan sudah terlalu dekat dengan waktu mulainya untuk diubah atau dibatalkan."


# Reading (booking_state and booking_payload: booking_effects.py) ---------------------------------


def booking_for_client(*, client, booking_id) -> Booking:
    try:
        return Booking.objects.select_related("session", "mitra").get(pk=booking_id, client=client)
    except (Booking.DoesNotExist, ValueError, TypeError):
        raise BookingNotFound()


def booking_for_mitra(*, mitra, booking_id) -> Booking:
    try:
        return Booking.objects.select_related("session", "client").get(pk=booking_id, mitra=mitra)
    except (Booking.DoesNotExist, ValueError, TypeError):
        raise BookingNotFound()


# Helpers ------------------------------------------------------------------------------------------


def _lock_booking(booking_id) -> tuple:
    """Precondition: inside transaction.atomic(). The session first, then the booking (the lock
    order of the session services)."""
    session_id = Booking.objects.filter(pk=booking_id).values_list("session_id", flat=True).first()
    if session_id is None:
        raise BookingNotFound()
    session = lock_session(session_id)
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    booking.session = session
    return session, booking


def _lock_mitra(mitra_id) -> Mitra:
    mitra = Mitra.objects.select_for_update().filter(pk=mitra_id, deactivated_at__isnull=True).first()
    if mitra is None:
        raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    return mitra


def _aware(starts_at):
    if starts_at is None or timezone.is_naive(starts_at):
        raise ServiceError(
            "Waktu mulai harus lengkap dengan zona waktu (ISO 8601).",
            code="invalid_starts_at",
            fields={"starts_at": ["Sertakan zona waktu, mis. +07:00."]},
        )
    return starts_at


# Holding and paying -------------------------------------------------------------------------------


def booking_create(*, client, mitra_id: int, starts_at, package_code: str, voucher_code: str | None = None):
    """Hold `starts_at` with the Bestie for the package's length and open its invoice (a voucher
    covering everything confirms at once). The invoice is opened before the hold (as
    session_create does) and expired again if the time was taken meanwhile.

    Raises: ServiceError `unknown_package` / `invalid_starts_at` (400), NotFound
    `mitra_not_found`, SlotTaken `slot_not_available` (409), VoucherRefused, gateway 502/503."""
    starts_at = _aware(starts_at)
    config = get_config()
    package = config.package(package_code)
    if package is None:
        raise ServiceError(
            "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
        )
    mitra = Mitra.objects.filter(pk=mitra_id, deactivated_at__isnull=True).first()
    if mitra is None or blocking.is_blocked(client_id=client.id, mitra_id=mitra_id):
        raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    now = timezone.now()
    # Cheap check first: most refusals cost no invoice.
    if not is_bookable(
        mitra=mitra, duration_seconds=package.duration_seconds, starts_at=starts_at, now=now, config=config
    ):
        raise SlotTaken()
    quote = promotions.price_quote(client=client, package=package, code=voucher_code, kind="session")
    session_id = uuid.uuid4()
    external_id = f"hb-session-{session_id}"
    invoice = None
    if not quote.is_free:
        invoice = invoice_open(
            external_id=external_id,
            amount_idr=quote.amount_idr,
            description=f"HaloBestie: {package.name} ({jakarta_text(starts_at)})",
        )
    try:
        with transaction.atomic():
            mitra = _lock_mitra(mitra_id)  # every holder of this Bestie's time queues here
            now = timezone.now()
            if not is_bookable(
                mitra=mitra,
                duration_seconds=package.duration_seconds,
                starts_at=starts_at,
                now=now,
                config=config,
            ):
                raise SlotTaken()
            session = ChatSession.objects.create(
                id=session_id,
                client=client,
                requested_mitra=mitra,
                allow_any_mitra=False,
                is_booked=True,
                package_code=package.code,
                duration_seconds=package.duration_seconds,
                price_idr=package.price_idr,
                discount_idr=quote.discount_idr,
            )
            booking = Booking.objects.create(
                session=session,
                client=client,
                mitra=mitra,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(seconds=package.duration_seconds),
                hold_expires_at=now + timedelta(seconds=config.booking_hold_seconds),
            )
            _payment_for(
                session, quote, client=client, kind="session", external_id=external_id, invoice=invoice
            )
            record(
                session,
                "booking_held",
                actor=client,
                mitra_id=mitra.id,
                starts_at=starts_at.isoformat(),
                package=package.code,
                **_voucher_data(quote),
            )
            if quote.is_free:
                from sessions_app.lifecycle import session_mark_paid

                session_mark_paid(session_id=session.pk)
    except Exception:
        if invoice is not None:
            invoice_cancel_quietly(invoice=invoice)
        raise
    return Booking.objects.select_related("session", "mitra", "client").get(pk=booking.pk)


def bookings_expire_holds(*, now=None, limit=200) -> int:
    """Unpaid bookings past their hold: cancelled (the time is free already: holding_bookings
    stops counting them at `hold_expires_at`), and their invoice expired after commit."""
    now = now or timezone.now()
    due = list(
        Booking.objects.filter(session__status=Status.PENDING_PAYMENT, hold_expires_at__lte=now).values_list(
            "pk", flat=True
        )[:limit]
    )
    done = 0
    for booking_id in due:
        with transaction.atomic():
            session = (
                ChatSession.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    booking__pk=booking_id, status=Status.PENDING_PAYMENT, booking__hold_expires_at__lte=now
                )
                .first()
            )
            if session is None:
                continue
            _cancel(session, reason=EndReason.HOLD_EXPIRED, now=now, refund=False)
            _expire_invoices_after_commit(session)
            done += 1
    return done


def _expire_invoices_after_commit(session):
    pending = list(
        Payment.objects.filter(session=session, status=PaymentStatus.PENDING).values_list(
            "invoice_id", "invoice_url", "expires_at"
        )
    )

    def expire():
        for invoice_id, url, expires_at in pending:
            invoice_cancel_quietly(
                invoice=InvoiceInfo(invoice_id=invoice_id, invoice_url=url, expires_at=expires_at)
            )

    transaction.on_commit(expire)


# The start ----------------------------------------------------------------------------------------


def bookings_start_due(*, now=None, limit=200) -> int:
    """Confirmed bookings whose time came: offered to the booked Bestie until start + grace
    (whatever their load: the dispatcher kept overlapping on-demand sessions away)."""
    now = now or timezone.now()
    config = get_config()
    due = list(
        Booking.objects.filter(session__status=Status.SCHEDULED, starts_at__lte=now).values_list(
            "pk", flat=True
        )[:limit]
    )
    done = 0
    for booking_id in due:
        with transaction.atomic():
            session = (
                ChatSession.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(booking__pk=booking_id, status=Status.SCHEDULED)
                .first()
            )
            if session is None:
                continue
            booking = Booking.objects.select_related("mitra").get(pk=booking_id)
            mitra = Mitra.objects.select_for_update().get(pk=booking.mitra_id)
            grace_ends = booking.starts_at + timedelta(seconds=config.booking_grace_seconds)
            timeout = max(int((grace_ends - now).total_seconds()), 60)
            offer_booked(session, mitra, now=now, timeout=timeout)
            done += 1
    return done


def booking_fallback(*, client, booking_id) -> Booking:
    """The client chose any available Bestie after the booked one did not come. Raises Conflict
    `booking_not_waiting` unless the booking is waiting for that choice."""
    booking_for_client(client=client, booking_id=booking_id)
    with transaction.atomic():
        session, booking = _lock_booking(booking_id)
        if session.status != Status.MATCHING or booking.mitra_absent_at is None or session.allow_any_mitra:
            raise Conflict("Pemesanan ini tidak sedang menunggu pilihanmu.", code="booking_not_waiting")
        session.allow_any_mitra = True
        session.matching_started_at = timezone.now()  # a whole matching window for the new search
        session.save(update_fields=["allow_any_mitra", "matching_started_at", "updated_at"])
        record(session, "booking_fallback", actor=client)
        notify_updated(session)
        dispatch_after_commit()
    return booking_for_client(client=client, booking_id=booking_id)


# Changes ------------------------------------------------------------------------------------------


def _check_change_window(booking, *, now):
    deadline = booking.starts_at - timedelta(seconds=get_config().booking_change_deadline_seconds)
    if now > deadline:
        raise ChangeClosed()


def booking_cancel_by_client(*, client, booking_id) -> Booking:
    """The client cancels: a hold (nothing paid) at any time; a confirmed booking up to
    `booking_change_deadline_seconds` before its start, refunded in full; a booking whose Bestie
    did not come, refunded in full. Raises ChangeClosed (409) after the deadline,
    Conflict `booking_not_cancellable` once started or over."""
    booking_for_client(client=client, booking_id=booking_id)
    now = timezone.now()
    with transaction.atomic():
        session, booking = _lock_booking(booking_id)
        if session.status == Status.PENDING_PAYMENT:
            _cancel(session, reason=EndReason.CLIENT_CANCELLED, actor=client, now=now, refund=False)
            _expire_invoices_after_commit(session)
        elif session.status == Status.SCHEDULED:
            _check_change_window(booking, now=now)
            _cancel(session, reason=EndReason.CLIENT_CANCELLED, actor=client, now=now, refund=True)
            tell(
                booking,
                push_mitra=(
                    "Pemesanan dibatalkan",
                    f"Klien membatalkan sesi {jakarta_text(booking.starts_at)}",
                ),
            )
        elif session.status == Status.MATCHING and booking.mitra_absent_at is not None:
            _cancel(session, reason=EndReason.CLIENT_CANCELLED, actor=client, now=now, refund=True)
        else:
            raise Conflict("Pemesanan ini tidak dapat dibatalkan lagi.", code="booking_not_cancellable")
        record(session, "booking_cancelled", actor=client)
    return booking_for_client(client=client, booking_id=booking_id)


def _move(session, booking, *, starts_at, actor, now, check_deadline):
    if session.status not in (Status.PENDING_PAYMENT, Status.SCHEDULED):
        raise Conflict("Pemesanan ini tidak dapat dipindah lagi.", code="booking_not_movable")
    if check_deadline:
        _check_change_window(booking, now=now)
    mitra = _lock_mitra(booking.mitra_id)
    if not is_bookable(
        mitra=mitra,
        duration_seconds=session.duration_seconds,
        starts_at=starts_at,
        now=now,
        config=get_config(),
        exclude_booking_id=booking.pk,
    ):
        raise SlotTaken()
    previous = booking.starts_at
    booking.starts_at = starts_at
    booking.ends_at = starts_at + timedelta(seconds=session.duration_seconds)
    booking.reminders_sent = []
    booking.save(update_fields=["starts_at", "ends_at", "reminders_sent", "updated_at"])
    record(
        session, "booking_moved", actor=actor, starts_at=starts_at.isoformat(), previous=previous.isoformat()
    )


def booking_reschedule(*, client, booking_id, starts_at) -> Booking:
    """The client moves a held or confirmed booking to another free time of the same Bestie, up
    to the change deadline before the old start. Raises ChangeClosed, SlotTaken."""
    starts_at = _aware(starts_at)
    booking_for_client(client=client, booking_id=booking_id)
    now = timezone.now()
    with transaction.atomic():
        session, booking = _lock_booking(booking_id)
        _move(session, booking, starts_at=starts_at, actor=client, now=now, check_deadline=True)
        tell(booking, push_mitra=("Pemesanan dipindah", f"Klien memindah sesi ke {jakarta_text(starts_at)}."))
    return booking_for_client(client=client, booking_id=booking_id)


def booking_cancel_by_mitra(*, mitra, booking_id) -> Booking:
    """The Bestie cancels a booking not yet started: always a full refund; the client is told."""
    booking_for_mitra(mitra=mitra, booking_id=booking_id)
    return _cancel_for_client(booking_id, actor=mitra.user, reason=EndReason.MITRA_CANCELLED)


def booking_cancel_by_staff(*, actor, booking_id, note: str = "") -> Booking:
    """Staff cancel a booking not yet started (audited by the caller): a full refund; both told."""
    return _cancel_for_client(booking_id, actor=actor, reason=EndReason.STAFF_CANCELLED, note=note)


def _cancel_for_client(booking_id, *, actor, reason, note=""):
    now = timezone.now()
    with transaction.atomic():
        session, booking = _lock_booking(booking_id)
        if session.status not in (Status.PENDING_PAYMENT, Status.SCHEDULED):
            raise Conflict("Pemesanan ini tidak dapat dibatalkan lagi.", code="booking_not_cancellable")
        paid = session.status == Status.SCHEDULED
        _cancel(session, reason=reason, actor=actor, now=now, refund=paid)
        if not paid:
            _expire_invoices_after_commit(session)
        record(session, "booking_cancelled", actor=actor, reason=reason, **({"note": note} if note else {}))
        body = f"Sesimu {jakarta_text(booking.starts_at)} dibatalkan" + (
            ". Dana dikembalikan penuh." if paid else "."
        )
        tell(
            booking,
            push_client=("Pemesanan dibatalkan", body),
            push_mitra=("Pemesanan dibatalkan", f"Sesi {jakarta_text(booking.starts_at)} dibatalkan.")
            if reason == EndReason.STAFF_CANCELLED
            else None,
        )
    return Booking.objects.select_related("session", "mitra", "client").get(pk=booking_id)


def bookings_cancel_for_deactivated_mitra(mitra_id) -> int:
    """Hook for mitras.hooks.on_mitra_deactivated: the Bestie's bookings not yet started are
    cancelled as by staff (a full refund, the client told at once), instead of being offered at
    their start to a Bestie who can no longer accept."""
    cancelled = 0
    for booking_id in Booking.objects.filter(
        mitra_id=mitra_id, session__status__in=[Status.PENDING_PAYMENT, Status.SCHEDULED]
    ).values_list("pk", flat=True):
        try:
            _cancel_for_client(booking_id, actor=None, reason=EndReason.STAFF_CANCELLED)
        except Conflict:
            continue  # it moved on meanwhile
        cancelled += 1
    return cancelled


def bookings_cancel_for_deleted_client(client_id) -> int:
    """The client erased their account (sessions_app.apps, after the erasure): their bookings not
    yet started are cancelled, a confirmed one refunded in full and its Bestie told at once, so
    the time is free again and nobody waits at the start for a client who is gone."""
    cancelled = 0
    now = timezone.now()
    for booking_id in Booking.objects.filter(
        client_id=client_id, session__status__in=[Status.PENDING_PAYMENT, Status.SCHEDULED]
    ).values_list("pk", flat=True):
        with transaction.atomic():
            session, booking = _lock_booking(booking_id)
            if session.status not in (Status.PENDING_PAYMENT, Status.SCHEDULED):
                continue  # it moved on meanwhile
            paid = session.status == Status.SCHEDULED
            _cancel(session, reason=EndReason.ACCOUNT_DELETED, actor=None, now=now, refund=paid)
            if not paid:
                _expire_invoices_after_commit(session)
            record(session, "booking_cancelled", actor=None, reason=EndReason.ACCOUNT_DELETED)
            tell(
                booking,
                push_mitra=("Pemesanan dibatalkan", f"Sesi {jakarta_text(booking.starts_at)} dibatalkan."),
            )
        cancelled += 1
    return cancelled


def booking_move_by_staff(*, actor, booking_id, starts_at) -> Booking:
    """Staff move a booking (no change deadline; the new time must be free and in the Bestie's
    hours). Both sides are told. Audited by the caller."""
    starts_at = _aware(starts_at)
    now = timezone.now()
    with transaction.atomic():
        session, booking = _lock_booking(booking_id)
        _move(session, booking, starts_at=starts_at, actor=actor, now=now, check_deadline=False)
        text = f"Sesi dipindah ke {jakarta_text(starts_at)} oleh Tim HaloBestie."
        tell(booking, push_client=("Pemesanan dipindah", text), push_mitra=("Pemesanan dipindah", text))
    return Booking.objects.select_related("session", "mitra", "client").get(pk=booking_id)


# Reminders ----------------------------------------------------------------------------------------


def bookings_remind_due(*, now=None, limit=200) -> int:
    """Push a reminder to both sides at each configured lead time before a confirmed booking
    (one push per booking per tick: leads already passed when it was booked are marked sent with
    it). Each lead is recorded under the booking's row lock (SKIP LOCKED), so two schedulers send
    each reminder once."""
    now = now or timezone.now()
    config = get_config()
    leads = sorted(
        {s for s in (config.booking_reminder_first_seconds, config.booking_reminder_second_seconds) if s}
    )
    if not leads:
        return 0
    horizon = now + timedelta(seconds=leads[-1])
    due = list(
        Booking.objects.filter(
            session__status=Status.SCHEDULED, starts_at__gt=now, starts_at__lte=horizon
        ).values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for booking_id in due:
        with transaction.atomic():
            booking = (
                Booking.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("mitra", "session")
                .filter(pk=booking_id, session__status=Status.SCHEDULED)
                .first()
            )
            if booking is None:
                continue
            due_leads = [lead for lead in leads if booking.starts_at - timedelta(seconds=lead) <= now]
            fresh = [lead for lead in due_leads if lead not in booking.reminders_sent]
            if not fresh:
                continue
            booking.reminders_sent = sorted({*booking.reminders_sent, *fresh})
            booking.save(update_fields=["reminders_sent", "updated_at"])
            record(booking.session, "booking_reminded", lead_seconds=min(fresh))
            minutes = max(1, int((booking.starts_at - now).total_seconds() // 60))
            when = f"{minutes} menit lagi" if minutes < 120 else f"pada {jakarta_text(booking.starts_at)}"
            _remind_after_commit(booking, when)
            sent += 1
    return sent


def _remind_after_commit(booking, when):
    client_id, mitra_user_id, booking_id = booking.client_id, booking.mitra.user_id, str(booking.pk)
    mitra_name = booking.mitra.display_name
    data = {"type": "booking.reminder", "booking_id": booking_id}

    def send():
        push.send_to_user(
            user_id=client_id,
            title="Pengingat sesi",
            data=data,
            body=f"Sesimu dengan {mitra_name} dimulai {when}.",
        )
        push.send_to_user(
            user_id=mitra_user_id,
            title="Pengingat sesi terjadwal",
            data=data,
            body=f"Sesi terjadwalmu dimulai {when}.",
        )

    transaction.on_commit(send)


def scheduler_jobs():
    """The booking timers, run by sessions_app/timers.py before the queue dispatch."""
    return [
        ("booking_holds_expire", lambda now: bookings_expire_holds(now=now)),
        ("booking_reminders", lambda now: bookings_remind_due(now=now)),
        ("bookings_start", lambda now: bookings_start_due(now=now)),
    ]
