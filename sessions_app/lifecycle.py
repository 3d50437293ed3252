"""Every state change of a chat session, one function each (its lifecycle: create, pay, accept,
decline, end, cancel, extend, rate, report). The crisis flag: flagging.py and handoff.py.

Views, consumers, the payment hooks, the admin and the timers call these. Decisions are made under
row locks in Postgres; live events, mirror updates and queue dispatch go out after commit. The
allowed transitions are in `sessions_app/states.py`; matching (the queue, offers) is in
`sessions_app/matching.py`, the scheduler's jobs in `sessions_app/timers.py`.
"""

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from halobestie.errors import Conflict, Forbidden, NotFound, ServiceError
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from mitras.rest import mitra_session_finished
from payments.services import (
    invoice_cancel_quietly,
    invoice_open,
    payment_record,
    payment_record_free,
    refund_create,
)
from promotions import services as promotions
from sessions_app import blocking, notifications, observations, settlement
from sessions_app.booking_slots import next_booking_starts
from sessions_app.effects import load_changed, notify_updated, record, user_ids_of_mitras
from sessions_app.errors import SessionNotFound
from sessions_app.matching import back_to_matching, dispatch_after_commit, notify_paid, withdraw_pending_offer
from sessions_app.models import (
    Booking,
    ChatSession,
    EndReason,
    OfferOutcome,
    Rating,
    Report,
    SessionEvent,
    SessionOffer,
    Status,
)
from sessions_app.preferences import preferences_clean
from sessions_app.selectors import session_open_for_client
from sessions_app.states import check_transition

logger = logging.getLogger(__name__)

REPORT_REASONS = ("harassment", "inappropriate", "spam", "safety", "no_show", "other")


def lock_session(session_id, *, skip_locked=False) -> ChatSession:
    """Precondition: inside transaction.atomic(). Returns the locked row or raises NotFound."""
    try:
        return ChatSession.objects.select_for_update(skip_locked=skip_locked, of=("self",)).get(pk=session_id)
    except (ChatSession.DoesNotExist, ValueError, TypeError):
        raise SessionNotFound()


def end_active(session, *, reason, actor=None, now, fault=settlement.FAULT_NONE):
    """Precondition: `session` is locked and active. Ends it and settles the money (the Bestie's
    earnings for the served minutes, the unserved ones back to the client: settlement.py)."""
    check_transition(session, Status.ENDED)
    session.status = Status.ENDED
    session.end_reason = reason
    session.ended_by = actor
    session.ended_at = now
    session.save()
    record(session, "ended", actor=actor, reason=reason, **({"fault": fault} if fault else {}))
    settlement.session_settle(session=session, fault=fault, now=now)
    load_changed(session.mitra_id, -1)
    mitra_session_finished(
        mitra_id=session.mitra_id,
        accepted_at=session.accepted_at,
        ended_at=now,
        was_flagged=session.is_flagged,
    )  # rest after a crisis or a long run (mitras/rest.py)
    notify_updated(session)
    transaction.on_commit(lambda: notifications.session_ended(session=session))
    dispatch_after_commit()


def _cancel(session, *, reason, actor=None, now, refund):
    """Precondition: `session` is locked and not yet active. Cancels it; refunds what was paid."""
    check_transition(session, Status.CANCELLED)
    if session.status in (Status.MATCHING, Status.OFFERED):
        observations.matching_ended(outcome="cancelled")
    previous_mitra_id = session.mitra_id if session.status == Status.OFFERED else None
    if session.status == Status.OFFERED:
        withdraw_pending_offer(session, outcome=OfferOutcome.WITHDRAWN, now=now)
        session.mitra = None  # the offer record keeps the history; the mitra loses access
    session.status = Status.CANCELLED
    session.end_reason = reason
    session.ended_by = actor
    session.ended_at = now
    session.save()
    record(session, "cancelled", actor=actor, reason=reason)
    if refund and session.paid_at is not None:
        refund_create(session=session, reason=reason, actor=actor, allow_nothing=True)
    promotions.redemptions_release_for_session(session=session, reason=reason, now=now)
    if previous_mitra_id:
        load_changed(previous_mitra_id, -1)
        dispatch_after_commit()
    notify_updated(session, extra_user_ids=user_ids_of_mitras([previous_mitra_id]))


def _payment_for(session, quote, *, client, kind, external_id, invoice):
    """Record the payment of `quote` (free: a zero-amount paid record, no invoice) and reserve its
    voucher. Precondition: inside the session's transaction, session created or locked."""
    if quote.is_free:
        payment = payment_record_free(
            session=session, kind=kind, package_code=quote.package_code, discount_idr=quote.discount_idr,
            external_id=external_id,
        )  # fmt: skip
    else:
        payment = payment_record(
            session=session, kind=kind, package_code=quote.package_code, amount_idr=quote.amount_idr,
            discount_idr=quote.discount_idr, external_id=external_id, invoice=invoice,
        )  # fmt: skip
    promotions.redemption_reserve(quote=quote, client=client, session=session, payment=payment)
    if quote.is_free:
        promotions.redemption_consume(payment=payment)
    return payment


def _voucher_data(quote):
    return {"voucher_code": quote.code, "discount_idr": quote.discount_idr} if quote.code else {}


def session_create(
    *,
    client,
    package_code: str,
    mitra_id: int | None = None,
    allow_any_mitra: bool = True,
    voucher_code: str | None = None,
    topics=None,
    gender=None,
    language=None,
):
    """Create a session awaiting payment, with its invoice. The invoice is opened first (outside
    the transaction) so that no session ever waits on an invoice that does not exist; if the
    session cannot be stored after all, the invoice is expired again. With a voucher the invoice
    is for the discounted price; a voucher covering the whole price opens no invoice and the
    session goes straight to matching.

    Raises: ServiceError `unknown_package` / `invalid_preferences` (400), NotFound
    `mitra_not_found`, Conflict `session_already_open`, a promotions.services.VoucherRefused, and
    the payment gateway's 502/503.
    """
    wishes = preferences_clean(topics=topics, gender=gender, language=language)
    package = get_config().package(package_code)
    if package is None:
        raise ServiceError(
            "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
        )
    requested = None
    if mitra_id is not None:
        requested = Mitra.objects.filter(pk=mitra_id, deactivated_at__isnull=True).first()
        if requested is None or blocking.is_blocked(client_id=client.id, mitra_id=mitra_id):
            raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    if session_open_for_client(client=client) is not None:
        raise Conflict("Kamu masih punya sesi yang berjalan.", code="session_already_open")

    quote = promotions.price_quote(client=client, package=package, code=voucher_code, kind="session")
    session_id = uuid.uuid4()
    external_id = f"hb-session-{session_id}"
    invoice = None
    if not quote.is_free:
        invoice = invoice_open(
            external_id=external_id, amount_idr=quote.amount_idr, description=f"HaloBestie: {package.name}"
        )
    try:
        with transaction.atomic():
            # One client's concurrent creations queue up here; the partial unique index on open
            # sessions is the last line of defence.
            type(client).objects.select_for_update().get(pk=client.pk)
            if session_open_for_client(client=client) is not None:
                raise Conflict("Kamu masih punya sesi yang berjalan.", code="session_already_open")
            session = ChatSession.objects.create(
                id=session_id,
                client=client,
                requested_mitra=requested,
                allow_any_mitra=allow_any_mitra if requested else True,
                package_code=package.code,
                duration_seconds=package.duration_seconds,
                price_idr=package.price_idr,
                discount_idr=quote.discount_idr,
                preferred_topics=wishes["topics"],
                preferred_gender=wishes["gender"],
                preferred_language=wishes["language"],
            )
            _payment_for(
                session, quote, client=client, kind="session", external_id=external_id, invoice=invoice
            )
            record(
                session, "created", actor=client, package=package.code, requested_mitra_id=mitra_id,
                preferences={kind: value for kind, value in wishes.items() if value}, **_voucher_data(quote),
            )  # fmt: skip
            if quote.is_free:
                session = session_mark_paid(session_id=session.pk)
    except Exception:
        if invoice is not None:
            invoice_cancel_quietly(invoice=invoice)
        raise
    return session


def session_mark_paid(*, session_id, paid_at=None) -> ChatSession:
    """The session's payment arrived: it enters matching (the queue, first in first out) and the
    queue is dispatched after commit. Raises IllegalTransition (409) unless pending payment."""
    now = timezone.now()
    with transaction.atomic():
        session = lock_session(session_id)
        if session.is_booked:
            from sessions_app.booking_effects import booking_mark_paid

            check_transition(session, Status.SCHEDULED)
            booking_mark_paid(session, paid_at=paid_at, now=now)
            return session
        check_transition(session, Status.MATCHING)
        session.status = Status.MATCHING
        session.paid_at = paid_at or now
        session.matching_started_at = now
        session.save(update_fields=["status", "paid_at", "matching_started_at", "updated_at"])
        record(session, "paid")
        notify_paid(session)  # sent by the queue broadcast that follows the dispatch
        dispatch_after_commit()
    return session


def session_cancel_unpaid(*, session_id, reason: str = EndReason.PAYMENT_EXPIRED) -> ChatSession:
    """The invoice expired (or failed) before payment: pending_payment → cancelled."""
    now = timezone.now()
    with transaction.atomic():
        session = lock_session(session_id)
        if session.status != Status.PENDING_PAYMENT:
            check_transition(session, Status.CANCELLED)  # raises for ended/cancelled/...
            raise Conflict("Sesi sudah dibayar.", code="session_already_paid")
        _cancel(session, reason=reason, now=now, refund=False)
    return session


def payment_invoice_paid(payment):
    """payments.hooks.on_invoice_paid. Precondition: inside the callback's transaction, the
    session row locked (then the payment). Raises Conflict when the session cannot use the money."""
    if payment.kind == "session":
        session_mark_paid(session_id=payment.session_id, paid_at=payment.paid_at)
    else:
        session_extension_paid(session_id=payment.session_id, payment=payment)


def payment_invoice_unpaid(payment, reason):
    """payments.hooks.on_invoice_unpaid. Precondition: inside the callback's transaction, the
    session row locked. Raises Conflict when the session already moved on."""
    session_cancel_unpaid(session_id=payment.session_id, reason=reason)


def payment_refund_issued(refund):
    """payments.hooks.on_refund_issued: the client hears of it by push after commit."""
    session_id, amount = refund.session_id, refund.amount_idr

    def push():
        session = ChatSession.objects.filter(pk=session_id).first()
        if session is not None:
            notifications.refund_issued(session=session, amount_idr=amount)

    transaction.on_commit(push)


def payment_event_record(session_id, event_kind, *, actor=None, data):
    """payments.hooks.on_payment_event: the payment fact joins the session's timeline, inside the
    payments transaction."""
    SessionEvent.objects.create(session_id=session_id, kind=event_kind, actor=actor, data=data)


def sessions_release_deactivated_mitra(mitra_id) -> int:
    """Hook for mitras.hooks.on_mitra_deactivated: pending offers of the mitra go back to the
    queue; active sessions end (`staff_ended`, the Bestie's fault: the client gets the unserved
    minutes back at once)."""
    now = timezone.now()
    released = 0
    for session_id in ChatSession.objects.filter(
        mitra_id=mitra_id, status__in=[Status.OFFERED, Status.ACTIVE]
    ).values_list("id", flat=True):
        with transaction.atomic():
            session = lock_session(session_id)
            if session.mitra_id != mitra_id:
                continue
            if session.status == Status.OFFERED:
                back_to_matching(session, outcome=OfferOutcome.WITHDRAWN, now=now)
            elif session.status == Status.ACTIVE:
                end_active(session, reason=EndReason.STAFF_ENDED, now=now, fault=settlement.FAULT_MITRA)
            released += 1
    return released


def session_accept(*, session_id, mitra) -> ChatSession:
    """The offered mitra accepts: the session becomes active and its timer starts
    (`ends_at = accepted_at + duration`). Raises Conflict `offer_not_available` when the offer is
    not (or no longer) this mitra's, `offer_expired` after the offer window."""
    now = timezone.now()
    with transaction.atomic():
        session = lock_session(session_id)
        if session.status != Status.OFFERED or session.mitra_id != mitra.id:
            raise Conflict("Tawaran ini sudah tidak berlaku.", code="offer_not_available")
        if session.offer_expires_at and session.offer_expires_at <= now:
            raise Conflict("Waktu menerima tawaran sudah habis.", code="offer_expired")
        check_transition(session, Status.ACTIVE)
        observations.offer_ended(session, outcome=OfferOutcome.ACCEPTED, now=now)
        SessionOffer.objects.filter(session=session, mitra=mitra, outcome=OfferOutcome.PENDING).update(
            outcome=OfferOutcome.ACCEPTED, responded_at=now
        )
        session.status = Status.ACTIVE
        session.accepted_at = now
        session.ends_at = now + timedelta(seconds=session.duration_seconds + session.extended_seconds)
        session.save()
        record(session, "accepted", actor=mitra.user)
        notify_updated(session)
        transaction.on_commit(lambda: _notify_started(session.id))
    return session


def _notify_started(session_id):
    session = ChatSession.objects.filter(pk=session_id).first()
    if session is not None:
        notifications.session_started(session=session)


def session_decline(*, session_id, mitra) -> ChatSession:
    """The offered mitra declines: the session goes back to matching for the next mitra."""
    now = timezone.now()
    with transaction.atomic():
        session = lock_session(session_id)
        if session.status != Status.OFFERED or session.mitra_id != mitra.id:
            raise Conflict("Tawaran ini sudah tidak berlaku.", code="offer_not_available")
        back_to_matching(session, outcome=OfferOutcome.DECLINED, now=now, actor=mitra.user)
    return session


def session_end(*, session_id, actor, fault: str = settlement.FAULT_NONE, now=None) -> ChatSession:
    """End or cancel early, by the client, the mitra or staff; the reason follows from who and when.

    - before payment (client or staff): cancelled, the invoice is left to expire;
    - paid but not yet active (client or staff): cancelled and refunded;
    - active (either participant or staff): ended and settled (settlement.py); staff say whose
      fault it was (`fault`: "mitra", "client" or "" for no one's).
    A mitra with a pending offer declines instead (POST …/decline).
    """
    if fault not in settlement.FAULTS:
        raise ValueError(f"unknown fault {fault!r}")
    now = now or timezone.now()
    with transaction.atomic():
        session = lock_session(session_id)
        role = actor.role
        is_staff = role == "staff"
        if role == "client" and session.client_id != actor.id:
            raise SessionNotFound()
        if role == "mitra" and (session.mitra_id is None or session.mitra.user_id != actor.id):
            raise SessionNotFound()
        if session.status == Status.ACTIVE:
            reason = {"client": EndReason.CLIENT_ENDED, "mitra": EndReason.MITRA_ENDED}.get(
                role, EndReason.STAFF_ENDED
            )
            end_active(session, reason=reason, actor=actor, now=now, fault=fault if is_staff else "")
        elif session.status in (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED):
            if role == "mitra":
                raise Conflict("Tolak tawaran dengan /decline.", code="use_decline")
            if (
                role == "client"
                and session.is_booked
                and not Booking.objects.filter(session=session, mitra_absent_at__isnull=False).exists()
            ):
                # The booking's rules (change deadline, no-show) hold: POST /bookings/{id}/cancel.
                raise Conflict("Batalkan lewat pemesanan.", code="use_booking_cancel")
            reason = EndReason.STAFF_ENDED if is_staff else EndReason.CLIENT_CANCELLED
            _cancel(session, reason=reason, actor=actor, now=now, refund=True)
        else:
            check_transition(session, Status.ENDED)
    return session


def sessions_cancel_for_deleted_client(*, client) -> int:
    """The client erased their account: every open session of theirs ends (refunded if paid)."""
    now = timezone.now()
    count = 0
    for session_id in ChatSession.objects.filter(
        client=client, status__in=[Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED, Status.ACTIVE]
    ).values_list("id", flat=True):
        with transaction.atomic():
            session = lock_session(session_id)
            if session.status == Status.ACTIVE:
                end_active(session, reason=EndReason.ACCOUNT_DELETED, actor=client, now=now)
            elif session.status in (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED):
                _cancel(session, reason=EndReason.ACCOUNT_DELETED, actor=client, now=now, refund=True)
            count += 1
    return count


def session_extension_request(*, session_id, client, package_code: str, voucher_code: str | None = None):
    """Open an extension invoice for an active session (client only). Returns the Payment.
    The session's `ends_at` moves only when the payment arrives (session_extension_paid), at once
    when a voucher makes the extension free."""
    package = get_config().package(package_code)
    if package is None:
        raise ServiceError(
            "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
        )
    session = ChatSession.objects.filter(pk=session_id, client=client).first()
    if session is None:
        raise SessionNotFound()
    if session.status != Status.ACTIVE:
        raise Conflict(
            "Hanya sesi yang sedang berlangsung yang bisa diperpanjang.", code="session_not_active"
        )
    quote = promotions.price_quote(client=client, package=package, code=voucher_code, kind="extension")
    external_id = f"hb-extension-{uuid.uuid4()}"
    invoice = None
    if not quote.is_free:
        invoice = invoice_open(
            external_id=external_id,
            amount_idr=quote.amount_idr,
            description=f"HaloBestie: perpanjangan {package.name}",
        )
    try:
        with transaction.atomic():
            session = lock_session(session_id)
            if session.status != Status.ACTIVE:
                raise Conflict(
                    "Hanya sesi yang sedang berlangsung yang bisa diperpanjang.", code="session_not_active"
                )
            _check_extension_fits(session, seconds=package.duration_seconds)
            payment = _payment_for(
                session, quote, client=client, kind="extension", external_id=external_id, invoice=invoice
            )
            record(
                session,
                "extension_requested",
                actor=client,
                external_id=external_id,
                duration_seconds=package.duration_seconds,
                **_voucher_data(quote),
            )
            if quote.is_free:
                session_extension_paid(session_id=session.pk, payment=payment)
    except Exception:
        if invoice is not None:
            invoice_cancel_quietly(invoice=invoice)
        raise
    return payment


def session_extension_paid(*, session_id, payment) -> ChatSession:
    """An extension was paid: `ends_at` moves by the package's duration. Raises Conflict
    `session_not_active` when the session ended meanwhile (the payment side refunds it)."""
    with transaction.atomic():
        session = lock_session(session_id)
        if session.status != Status.ACTIVE:
            raise Conflict("Sesi sudah tidak berlangsung.", code="session_not_active")
        requested = (
            SessionEvent.objects.filter(
                session=session, kind="extension_requested", data__external_id=payment.external_id
            )
            .values_list("data", flat=True)
            .first()
        )
        package = get_config().package(payment.package_code)
        seconds = (requested or {}).get("duration_seconds") or (package.duration_seconds if package else 0)
        # A booking of the Bestie may have been made since the request: then the money goes back.
        _check_extension_fits(session, seconds=seconds)
        session_extend_locked(
            session, seconds=seconds, amount_idr=payment.amount_idr, discount_idr=payment.discount_idr
        )
    return session


def _check_extension_fits(session, *, seconds: int) -> None:
    """Precondition: `session` locked. Raises Conflict `extension_blocked_by_booking` when `seconds`
    more would run into a booking of the session's Bestie (its start less the buffer): the
    booked client must find their Bestie free, as the dispatcher keeps on-demand offers clear of
    bookings (sessions_app/matching.py)."""
    if session.mitra_id is None:
        return
    limit = next_booking_starts(mitra_ids=[session.mitra_id], now=timezone.now()).get(session.mitra_id)
    if limit is not None and session.ends_at + timedelta(seconds=seconds) > limit:
        raise Conflict(
            "Bestie ini punya sesi terjadwal setelah sesi ini, jadi sesi tidak bisa diperpanjang selama itu.",
            code="extension_blocked_by_booking",
        )


def session_extend_locked(
    session, *, seconds: int, amount_idr: int, discount_idr: int = 0, **event_data
) -> None:
    """Precondition: `session` locked and active. `ends_at` moves by `seconds`; `amount_idr` is
    what the client paid for them (0 for the free minutes of a crisis flag, sessions_app/handoff.py:
    then the mitra's earnings stay as they were), `discount_idr` what a voucher took off the
    extension's list price (the session keeps list prices and the discount: settlement.share_basis)."""
    session.ends_at = session.ends_at + timedelta(seconds=seconds)
    session.extended_seconds += seconds
    session.extensions_total_idr += amount_idr + discount_idr
    session.discount_idr += discount_idr
    if session.ends_at - timezone.now() > timedelta(seconds=get_config().ending_soon_lead_seconds):
        session.ending_soon_sent_at = None
    session.save()
    record(session, "extended", seconds=seconds, amount_idr=amount_idr, **event_data)
    notify_updated(session)


def session_rate(*, session_id, client, score: int, comment: str = "") -> Rating:
    """The client rates the mitra once, after the end (1–5, comment up to 1,000 characters)."""
    with transaction.atomic():
        session = lock_session(session_id)
        if session.client_id != client.id:
            raise SessionNotFound()
        if session.status != Status.ENDED:
            raise Conflict("Rating hanya bisa diberikan setelah sesi selesai.", code="session_not_ended")
        if Rating.objects.filter(session=session).exists():
            raise Conflict("Sesi ini sudah diberi rating.", code="already_rated")
        rating = Rating.objects.create(
            session=session, mitra_id=session.mitra_id, score=score, comment=comment
        )
        Mitra.objects.filter(pk=session.mitra_id).update(
            rating_count=F("rating_count") + 1, rating_sum=F("rating_sum") + score
        )
        record(session, "rated", actor=client, score=score)
    return rating


def session_report(*, session_id, reporter, reason: str, detail: str = "") -> Report:
    """Either participant reports the other, once per session; the report waits in the staff queue."""
    if reason not in REPORT_REASONS:
        raise ServiceError(
            "Alasan laporan tidak dikenal.",
            code="validation_error",
            fields={"reason": ["Alasan tidak dikenal."]},
        )
    with transaction.atomic():
        session = lock_session(session_id)
        is_client = session.client_id == reporter.id
        is_mitra = session.mitra_id is not None and session.mitra.user_id == reporter.id
        if not (is_client or is_mitra):
            raise SessionNotFound()
        if session.accepted_at is None:
            raise Conflict(
                "Hanya sesi yang pernah berlangsung yang bisa dilaporkan.", code="session_not_started"
            )
        if Report.objects.filter(session=session, reporter=reporter).exists():
            raise Conflict("Kamu sudah melaporkan sesi ini.", code="already_reported")
        report = Report.objects.create(session=session, reporter=reporter, reason=reason, detail=detail)
        record(session, "reported", actor=reporter, reason=reason)
    return report


def report_resolve(*, report_id, actor, note: str) -> Report:
    """Staff close a report with a resolution note."""
    if not actor.is_staff:
        raise Forbidden()
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report_id)
        if report.status == "resolved":
            raise Conflict("Laporan sudah diselesaikan.", code="already_resolved")
        report.status = "resolved"
        report.resolution_note = note
        report.resolved_by = actor
        report.resolved_at = timezone.now()
        report.save()
        record(report.session, "report_resolved", actor=actor, report_id=report.id)
    return report
