"""Every state change of a chat session, one function each.

Views, consumers, the payment webhook, the admin and the scheduler all call these. Decisions are
made under row locks in Postgres; live events, mirror updates and queue dispatch go out after
commit. The allowed transitions are in `sessions_app/states.py`.

Capacity invariant: a mitra's load (offered + active sessions) only grows in `queue_dispatch`,
which runs under one transaction-level advisory lock and with the candidate mitra rows locked, so
two dispatchers can never both fill a mitra's last slot.
"""

import logging
import uuid
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from halobestie import metrics
from halobestie.errors import Conflict, Forbidden, NotFound, ServiceError
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from mitras.selectors import last_heartbeats
from sessions_app import blocking, events, notifications
from sessions_app.models import (
    ChatSession,
    EarningsEntry,
    EndReason,
    OfferOutcome,
    Rating,
    Report,
    SessionEvent,
    SessionOffer,
    Status,
)
from sessions_app.selectors import mitra_session_loads, session_open_for_client
from sessions_app.states import check_transition

logger = logging.getLogger(__name__)

DISPATCH_LOCK_KEY = 0x4841_4C4F  # "HALO": the advisory lock that serialises queue dispatch
REPORT_REASONS = ("harassment", "inappropriate", "spam", "safety", "no_show", "other")


# Helpers ---------------------------------------------------------------------------------------


def _lock_session(session_id, *, skip_locked=False) -> ChatSession:
    """Precondition: inside transaction.atomic(). Returns the locked row or raises NotFound."""
    try:
        return ChatSession.objects.select_for_update(skip_locked=skip_locked, of=("self",)).get(pk=session_id)
    except (ChatSession.DoesNotExist, ValueError, TypeError):
        raise NotFound("Sesi tidak ditemukan.", code="session_not_found")


def _record(session, kind, *, actor=None, **data):
    SessionEvent.objects.create(session=session, kind=kind, actor=actor, data=data)


def _participant_user_ids(session):
    user_ids = [session.client_id]
    if session.mitra_id:
        user_ids.append(Mitra.objects.filter(pk=session.mitra_id).values_list("user_id", flat=True).first())
    return user_ids


def _notify_updated(session, *, extra_user_ids=()):
    """After commit: `session.updated` with the committed state to both participants."""
    session_id = session.pk
    user_ids = [*_participant_user_ids(session), *extra_user_ids]

    def send():
        from sessions_app.serializers import session_payload

        fresh = ChatSession.objects.select_related("client", "mitra").filter(pk=session_id).first()
        if fresh is not None:
            events.send_now(user_ids, {"type": "session.updated", "session": session_payload(fresh)})

    transaction.on_commit(send)


def _capacity_changed(mitra_id):
    """The mitra's load changed in this transaction: the Valkey mirror recounts after commit."""
    if mitra_id is None:
        return
    from mitras import mirror

    mirror.mirror_capacity_changed(mitra_id)


def _dispatch_after_commit():
    transaction.on_commit(lambda: _safe_dispatch())


def _safe_dispatch():
    try:
        queue_dispatch()
    except Exception:
        # The scheduler dispatches every tick as well: a failure here delays, never loses.
        logger.exception("queue dispatch after commit failed")


def _advisory_lock(key):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _end_active(session, *, reason, actor=None, now):
    """Precondition: `session` is locked and active. Ends it and books the mitra's earnings."""
    check_transition(session, Status.ENDED)
    session.status = Status.ENDED
    session.end_reason = reason
    session.ended_by = actor
    session.ended_at = now
    session.save()
    share = get_config().mitra_share_percent
    EarningsEntry.objects.create(
        mitra_id=session.mitra_id,
        session=session,
        amount_idr=(session.price_idr + session.extensions_total_idr) * share // 100,
        share_percent=share,
    )
    _record(session, "ended", actor=actor, reason=reason)
    _capacity_changed(session.mitra_id)
    _notify_updated(session)
    transaction.on_commit(lambda: notifications.session_ended(session=session))
    _dispatch_after_commit()


def _withdraw_pending_offer(session, *, outcome, now):
    SessionOffer.objects.filter(session=session, outcome=OfferOutcome.PENDING).update(
        outcome=outcome, responded_at=now
    )


def _cancel(session, *, reason, actor=None, now, refund):
    """Precondition: `session` is locked and not yet active. Cancels it; refunds what was paid."""
    check_transition(session, Status.CANCELLED)
    previous_mitra_id = session.mitra_id if session.status == Status.OFFERED else None
    if session.status == Status.OFFERED:
        _withdraw_pending_offer(session, outcome=OfferOutcome.WITHDRAWN, now=now)
        session.mitra = None  # the offer record keeps the history; the mitra loses access
    session.status = Status.CANCELLED
    session.end_reason = reason
    session.ended_by = actor
    session.ended_at = now
    session.save()
    _record(session, "cancelled", actor=actor, reason=reason)
    if refund and session.paid_at is not None:
        from payments.services import refund_create

        refund_create(session=session, reason=reason, actor=actor, allow_nothing=True)
    if previous_mitra_id:
        _capacity_changed(previous_mitra_id)
        _dispatch_after_commit()
    _notify_updated(session, extra_user_ids=_user_ids_of_mitras([previous_mitra_id]))


def _user_ids_of_mitras(mitra_ids):
    mitra_ids = [m for m in mitra_ids if m]
    return list(Mitra.objects.filter(pk__in=mitra_ids).values_list("user_id", flat=True)) if mitra_ids else []


# Creating and paying ---------------------------------------------------------------------------


def session_create(*, client, package_code: str, mitra_id: int | None = None, allow_any_mitra: bool = True):
    """Create a session awaiting payment, with its invoice. The invoice is opened first (outside
    the transaction) so that no session ever waits on an invoice that does not exist; if the
    session cannot be stored after all, the invoice is expired again.

    Raises: ServiceError `unknown_package` (400), NotFound `mitra_not_found`, Conflict
    `session_already_open`, and the payment gateway's 502/503.
    """
    from payments.services import invoice_cancel_quietly, invoice_open, payment_record

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

    session_id = uuid.uuid4()
    external_id = f"hb-session-{session_id}"
    invoice = invoice_open(
        external_id=external_id, amount_idr=package.price_idr, description=f"HaloBestie: {package.name}"
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
            )
            payment_record(
                session=session,
                kind="session",
                package_code=package.code,
                amount_idr=package.price_idr,
                external_id=external_id,
                invoice=invoice,
            )
            _record(session, "created", actor=client, package=package.code, requested_mitra_id=mitra_id)
    except Exception:
        invoice_cancel_quietly(invoice=invoice)
        raise
    return session


def session_mark_paid(*, session_id, paid_at=None) -> ChatSession:
    """The session's payment arrived: it enters matching (the queue, first in first out) and the
    queue is dispatched after commit. Raises IllegalTransition (409) unless pending payment."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock_session(session_id)
        check_transition(session, Status.MATCHING)
        session.status = Status.MATCHING
        session.paid_at = paid_at or now
        session.matching_started_at = now
        session.save()
        _record(session, "paid")
        _notify_updated(session)
        _dispatch_after_commit()
    return session


def session_cancel_unpaid(*, session_id, reason: str = EndReason.PAYMENT_EXPIRED) -> ChatSession:
    """The invoice expired (or failed) before payment: pending_payment → cancelled."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock_session(session_id)
        if session.status != Status.PENDING_PAYMENT:
            check_transition(session, Status.CANCELLED)  # raises for ended/cancelled/...
            raise Conflict("Sesi sudah dibayar.", code="session_already_paid")
        _cancel(session, reason=reason, now=now, refund=False)
    return session


# Matching --------------------------------------------------------------------------------------


def _choose_mitra(session, candidates, loads, refused):
    """The requested mitra when free (and not refused), else — if allowed — the least-loaded free
    mitra, ties to the one idle longest. `candidates` are locked rows with load < capacity."""
    if session.requested_mitra_id:
        requested = candidates.get(session.requested_mitra_id)
        if requested is not None and (session.id, requested.id) not in refused:
            return requested
        if not session.allow_any_mitra:
            return None
    free = [m for m in candidates.values() if (session.id, m.id) not in refused]
    if not free:
        return None
    epoch = timezone.now() - timedelta(days=36500)
    return min(free, key=lambda m: (loads.get(m.id, 0), m.last_assigned_at or epoch, m.id))


def queue_dispatch(*, now=None, batch: int = 200) -> list:
    """Offer waiting sessions to free mitras, first in first out. Returns the offered session ids.

    Safe to call from anywhere at any time (after a payment, a decline, a freed slot, a mitra going
    online, and every scheduler tick): dispatchers are serialised by an advisory lock.
    """
    now = now or timezone.now()
    config = get_config()
    offered = []
    with transaction.atomic():
        _advisory_lock(DISPATCH_LOCK_KEY)
        waiting = list(
            ChatSession.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.MATCHING)
            .order_by("matching_started_at", "created_at")[:batch]
        )
        if not waiting:
            return []
        mitras = list(
            Mitra.objects.select_for_update()
            .filter(is_online=True, deactivated_at__isnull=True)
            .order_by("id")
        )
        # Present = toggled online and heartbeat fresh (Valkey, else Postgres); the sweeper
        # switches stale mitras offline later, but they get no offers meanwhile.
        beats = last_heartbeats(mitras)
        ttl = config.heartbeat_ttl_seconds
        mitras = [m for m in mitras if beats[m.id] is not None and (now - beats[m.id]).total_seconds() < ttl]
        loads = mitra_session_loads([m.id for m in mitras])
        candidates = {m.id: m for m in mitras if loads.get(m.id, 0) < m.capacity}
        refused = set(
            SessionOffer.objects.filter(session__in=waiting)
            .exclude(outcome__in=[OfferOutcome.PENDING, OfferOutcome.ACCEPTED])
            .values_list("session_id", "mitra_id")
        )
        refused |= blocking.blocked_pairs(waiting)  # a blocked pair is never offered (issue 20)
        for session in waiting:
            if not candidates:
                break
            mitra = _choose_mitra(session, candidates, loads, refused)
            if mitra is None:
                continue
            _offer(session, mitra, now=now, timeout=config.offer_timeout_seconds)
            offered.append(session.id)
            loads[mitra.id] = loads.get(mitra.id, 0) + 1
            if loads[mitra.id] >= mitra.capacity:
                del candidates[mitra.id]
        if offered or waiting:
            transaction.on_commit(lambda: _send_queue_positions())
    return offered


def mitra_available_dispatch(mitra_id):
    """Hook for mitras.hooks.on_mitra_available: a slot may be free, dispatch the queue."""
    queue_dispatch()


def sessions_release_deactivated_mitra(mitra_id) -> int:
    """Hook for mitras.hooks.on_mitra_deactivated: pending offers of the mitra go back to the
    queue; active sessions end (`staff_ended`) and wait for a staff refund decision."""
    now = timezone.now()
    released = 0
    for session_id in ChatSession.objects.filter(
        mitra_id=mitra_id, status__in=[Status.OFFERED, Status.ACTIVE]
    ).values_list("id", flat=True):
        with transaction.atomic():
            session = _lock_session(session_id)
            if session.mitra_id != mitra_id:
                continue
            if session.status == Status.OFFERED:
                _back_to_matching(session, outcome=OfferOutcome.WITHDRAWN, now=now)
            elif session.status == Status.ACTIVE:
                session.needs_refund_review = True
                _end_active(session, reason=EndReason.STAFF_ENDED, now=now)
            released += 1
    return released


def _offer(session, mitra, *, now, timeout):
    """Precondition: session locked and matching, mitra locked with a free slot."""
    check_transition(session, Status.OFFERED)
    session.status = Status.OFFERED
    session.mitra = mitra
    session.offered_at = now
    session.offer_expires_at = now + timedelta(seconds=timeout)
    session.save()
    SessionOffer.objects.create(
        session=session, mitra=mitra, offered_at=now, expires_at=session.offer_expires_at
    )
    Mitra.objects.filter(pk=mitra.pk).update(last_assigned_at=now)
    mitra.last_assigned_at = now
    _record(session, "offered", mitra_id=mitra.id)
    _capacity_changed(mitra.id)
    transaction.on_commit(metrics.ASSIGNMENTS.inc)
    session_id, mitra_user_id = session.id, mitra.user_id

    def send_offer():
        from sessions_app.serializers import session_payload

        fresh = ChatSession.objects.select_related("client", "mitra").filter(pk=session_id).first()
        if fresh is not None and fresh.status == Status.OFFERED:
            payload = session_payload(fresh)
            events.send_now([mitra_user_id], {"type": "session.offer", "session": payload})
            events.send_now([fresh.client_id], {"type": "session.updated", "session": payload})
            from sessions_app import notifications

            notifications.offer_made(session=fresh, mitra_user_id=mitra_user_id)

    transaction.on_commit(send_offer)


def _send_queue_positions():
    waiting = list(
        ChatSession.objects.filter(status=Status.MATCHING)
        .order_by("matching_started_at", "created_at")
        .values_list("id", "client_id")
    )
    for position, (session_id, client_id) in enumerate(waiting, start=1):
        events.send_now(
            [client_id], {"type": "queue.position", "session_id": str(session_id), "position": position}
        )


def session_accept(*, session_id, mitra) -> ChatSession:
    """The offered mitra accepts: the session becomes active and its timer starts
    (`ends_at = accepted_at + duration`). Raises Conflict `offer_not_available` when the offer is
    not (or no longer) this mitra's, `offer_expired` after the offer window."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock_session(session_id)
        if session.status != Status.OFFERED or session.mitra_id != mitra.id:
            raise Conflict("Tawaran ini sudah tidak berlaku.", code="offer_not_available")
        if session.offer_expires_at and session.offer_expires_at <= now:
            raise Conflict("Waktu menerima tawaran sudah habis.", code="offer_expired")
        check_transition(session, Status.ACTIVE)
        SessionOffer.objects.filter(session=session, mitra=mitra, outcome=OfferOutcome.PENDING).update(
            outcome=OfferOutcome.ACCEPTED, responded_at=now
        )
        session.status = Status.ACTIVE
        session.accepted_at = now
        session.ends_at = now + timedelta(seconds=session.duration_seconds + session.extended_seconds)
        session.save()
        _record(session, "accepted", actor=mitra.user)
        _notify_updated(session)
        transaction.on_commit(lambda: _notify_started(session.id))
    return session


def _notify_started(session_id):
    from sessions_app import notifications

    session = ChatSession.objects.filter(pk=session_id).first()
    if session is not None:
        notifications.session_started(session=session)


def _back_to_matching(session, *, outcome, now, actor=None):
    """Precondition: session locked and offered. The offer ends; the session waits again at its
    old place in the queue and the queue is dispatched after commit."""
    check_transition(session, Status.MATCHING)
    mitra_id = session.mitra_id
    mitra_user_ids = _user_ids_of_mitras([mitra_id])
    _withdraw_pending_offer(session, outcome=outcome, now=now)
    session.status = Status.MATCHING
    session.mitra = None
    session.offered_at = None
    session.offer_expires_at = None
    session.save()
    _record(session, f"offer_{outcome}", actor=actor, mitra_id=mitra_id)
    _capacity_changed(mitra_id)
    _notify_updated(session, extra_user_ids=mitra_user_ids)
    _dispatch_after_commit()


def session_decline(*, session_id, mitra) -> ChatSession:
    """The offered mitra declines: the session goes back to matching for the next mitra."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock_session(session_id)
        if session.status != Status.OFFERED or session.mitra_id != mitra.id:
            raise Conflict("Tawaran ini sudah tidak berlaku.", code="offer_not_available")
        _back_to_matching(session, outcome=OfferOutcome.DECLINED, now=now, actor=mitra.user)
    return session


# Ending ----------------------------------------------------------------------------------------


def session_end(*, session_id, actor) -> ChatSession:
    """End or cancel early, by the client, the mitra or staff; the reason follows from who and when.

    - before payment (client or staff): cancelled, the invoice is left to expire;
    - paid but not yet active (client or staff): cancelled and refunded;
    - active (either participant or staff): ended, the mitra's earnings booked.
    A mitra with a pending offer declines instead (POST …/decline).
    """
    now = timezone.now()
    with transaction.atomic():
        session = _lock_session(session_id)
        role = actor.role
        is_staff = role == "staff"
        if role == "client" and session.client_id != actor.id:
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
        if role == "mitra" and (session.mitra_id is None or session.mitra.user_id != actor.id):
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
        if session.status == Status.ACTIVE:
            reason = {"client": EndReason.CLIENT_ENDED, "mitra": EndReason.MITRA_ENDED}.get(
                role, EndReason.STAFF_ENDED
            )
            _end_active(session, reason=reason, actor=actor, now=now)
        elif session.status in (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED):
            if role == "mitra":
                raise Conflict("Tolak tawaran dengan /decline.", code="use_decline")
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
            session = _lock_session(session_id)
            if session.status == Status.ACTIVE:
                _end_active(session, reason=EndReason.ACCOUNT_DELETED, actor=client, now=now)
            elif session.status in (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED):
                _cancel(session, reason=EndReason.ACCOUNT_DELETED, actor=client, now=now, refund=True)
            count += 1
    return count


# Extending -------------------------------------------------------------------------------------


def session_extension_request(*, session_id, client, package_code: str):
    """Open an extension invoice for an active session (client only). Returns the Payment.
    The session's `ends_at` moves only when the payment arrives (session_extension_paid)."""
    from payments.services import invoice_cancel_quietly, invoice_open, payment_record

    package = get_config().package(package_code)
    if package is None:
        raise ServiceError(
            "Paket tidak dikenal.", code="unknown_package", fields={"package": ["Paket tidak dikenal."]}
        )
    session = ChatSession.objects.filter(pk=session_id, client=client).first()
    if session is None:
        raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
    if session.status != Status.ACTIVE:
        raise Conflict(
            "Hanya sesi yang sedang berlangsung yang bisa diperpanjang.", code="session_not_active"
        )
    external_id = f"hb-extension-{uuid.uuid4()}"
    invoice = invoice_open(
        external_id=external_id,
        amount_idr=package.price_idr,
        description=f"HaloBestie: perpanjangan {package.name}",
    )
    try:
        with transaction.atomic():
            session = _lock_session(session_id)
            if session.status != Status.ACTIVE:
                raise Conflict(
                    "Hanya sesi yang sedang berlangsung yang bisa diperpanjang.", code="session_not_active"
                )
            payment = payment_record(
                session=session,
                kind="extension",
                package_code=package.code,
                amount_idr=package.price_idr,
                external_id=external_id,
                invoice=invoice,
            )
            _record(
                session,
                "extension_requested",
                actor=client,
                external_id=external_id,
                duration_seconds=package.duration_seconds,
            )
    except Exception:
        invoice_cancel_quietly(invoice=invoice)
        raise
    return payment


def session_extension_paid(*, session_id, payment) -> ChatSession:
    """An extension was paid: `ends_at` moves by the package's duration. Raises Conflict
    `session_not_active` when the session ended meanwhile (the payment side refunds it)."""
    with transaction.atomic():
        session = _lock_session(session_id)
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
        session_extend_locked(session, seconds=seconds, amount_idr=payment.amount_idr)
    return session


def session_extend_locked(session, *, seconds: int, amount_idr: int, **event_data) -> None:
    """Precondition: `session` locked and active. `ends_at` moves by `seconds`; `amount_idr` is
    what the client paid for them (0 for the free minutes of a crisis flag, sessions_app/handoff.py:
    then the mitra's earnings stay as they were)."""
    session.ends_at = session.ends_at + timedelta(seconds=seconds)
    session.extended_seconds += seconds
    session.extensions_total_idr += amount_idr
    if session.ends_at - timezone.now() > timedelta(seconds=get_config().ending_soon_lead_seconds):
        session.ending_soon_sent_at = None
    session.save()
    _record(session, "extended", seconds=seconds, amount_idr=amount_idr, **event_data)
    _notify_updated(session)


# After the session -----------------------------------------------------------------------------


def session_rate(*, session_id, client, score: int, comment: str = "") -> Rating:
    """The client rates the mitra once, after the end (1–5, comment up to 1,000 characters)."""
    with transaction.atomic():
        session = _lock_session(session_id)
        if session.client_id != client.id:
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
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
        _record(session, "rated", actor=client, score=score)
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
        session = _lock_session(session_id)
        is_client = session.client_id == reporter.id
        is_mitra = session.mitra_id is not None and session.mitra.user_id == reporter.id
        if not (is_client or is_mitra):
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
        if session.accepted_at is None:
            raise Conflict(
                "Hanya sesi yang pernah berlangsung yang bisa dilaporkan.", code="session_not_started"
            )
        if Report.objects.filter(session=session, reporter=reporter).exists():
            raise Conflict("Kamu sudah melaporkan sesi ini.", code="already_reported")
        report = Report.objects.create(session=session, reporter=reporter, reason=reason, detail=detail)
        _record(session, "reported", actor=reporter, reason=reason)
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
        _record(report.session, "report_resolved", actor=actor, report_id=report.id)
    return report


# Timers (the scheduler calls these; each row is handled in its own transaction) ---------------


def _due(query, limit):
    return list(query.values_list("id", flat=True)[:limit])


def _for_each_locked(ids, condition, handle):
    """Lock each due row with SKIP LOCKED and re-check it is still due: several scheduler
    replicas never handle one timer twice, and a row changed meanwhile is left alone."""
    done = 0
    for session_id in ids:
        with transaction.atomic():
            session = (
                ChatSession.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=session_id, **condition)
                .first()
            )
            if session is None:
                continue
            handle(session)
            done += 1
    return done


def offers_expire_due(*, now=None, limit=200) -> int:
    """Offers past their window go back to matching for the next mitra."""
    now = now or timezone.now()
    condition = {"status": Status.OFFERED, "offer_expires_at__lte": now}
    return _for_each_locked(
        _due(ChatSession.objects.filter(**condition), limit),
        condition,
        lambda s: _back_to_matching(s, outcome=OfferOutcome.EXPIRED, now=now),
    )


def matching_expire_due(*, now=None, limit=200) -> int:
    """Sessions that waited longer than the matching window end unmatched, with a refund."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=get_config().matching_timeout_seconds)
    # Our own clock from when the session entered the queue, never the gateway's paid_at: a late
    # or reconciled callback must still get the whole matching window.
    condition = {"status": Status.MATCHING, "matching_started_at__lte": cutoff}

    def handle(session):
        from payments.services import refund_create

        check_transition(session, Status.UNMATCHED)
        session.status = Status.UNMATCHED
        session.end_reason = EndReason.NO_MITRA
        session.ended_at = now
        session.save()
        _record(session, "unmatched")
        refund_create(session=session, reason=EndReason.NO_MITRA, allow_nothing=True)
        _notify_updated(session)

    return _for_each_locked(_due(ChatSession.objects.filter(**condition), limit), condition, handle)


def sessions_warn_ending_soon(*, now=None, limit=200) -> int:
    now = now or timezone.now()
    lead = timedelta(seconds=get_config().ending_soon_lead_seconds)
    condition = {"status": Status.ACTIVE, "ends_at__lte": now + lead, "ending_soon_sent_at__isnull": True}

    def handle(session):
        session.ending_soon_sent_at = now
        session.save(update_fields=["ending_soon_sent_at", "updated_at"])
        _record(session, "ending_soon")
        frame = {
            "type": "session.ending_soon",
            "session_id": str(session.id),
            "ends_at": session.ends_at.isoformat(),
            "seconds_left": max(0, int((session.ends_at - now).total_seconds())),
        }
        events.send_on_commit(_participant_user_ids(session), frame)
        session_id = session.id

        def push():
            from sessions_app import notifications

            fresh = ChatSession.objects.filter(pk=session_id).first()
            if fresh is not None:
                notifications.ending_soon(session=fresh)

        transaction.on_commit(push)

    return _for_each_locked(_due(ChatSession.objects.filter(**condition), limit), condition, handle)


def sessions_end_due(*, now=None, limit=200) -> int:
    now = now or timezone.now()
    condition = {"status": Status.ACTIVE, "ends_at__lte": now}
    return _for_each_locked(
        _due(ChatSession.objects.filter(**condition), limit),
        condition,
        lambda s: _end_active(s, reason=EndReason.EXPIRED, now=now),
    )


def sessions_check_mitra_presence(*, now=None, limit=200) -> int:
    """Active sessions whose mitra's presence lapsed (no fresh heartbeat: the app is gone, not
    merely switched to "no new offers"): both sides are told at once; back within the grace
    period, the session goes on; else it ends `mitra_lost` and waits for a staff refund decision
    (`needs_refund_review`)."""
    now = now or timezone.now()
    config = get_config()
    grace = timedelta(seconds=config.mitra_lost_grace_seconds)
    ttl = config.heartbeat_ttl_seconds
    active = list(
        ChatSession.objects.filter(status=Status.ACTIVE).values_list("id", "mitra_id", "mitra_lost_at")[
            :limit
        ]
    )
    if not active:
        return 0
    mitras = list(Mitra.objects.filter(pk__in={m for _, m, _ in active}).only("id", "last_heartbeat_at"))
    beats = last_heartbeats(mitras)
    present = {m for m, beat in beats.items() if beat is not None and (now - beat).total_seconds() < ttl}

    def lapse(session):
        session.mitra_lost_at = now
        session.save(update_fields=["mitra_lost_at", "updated_at"])
        _record(session, "mitra_lost")
        _notify_updated(session)

    def back(session):
        session.mitra_lost_at = None
        session.save(update_fields=["mitra_lost_at", "updated_at"])
        _record(session, "mitra_back")
        _notify_updated(session)

    def give_up(session):
        session.needs_refund_review = True
        _end_active(session, reason=EndReason.MITRA_LOST, now=now)

    lapsed = [sid for sid, mitra_id, lost_at in active if lost_at is None and mitra_id not in present]
    returned = [sid for sid, mitra_id, lost_at in active if lost_at is not None and mitra_id in present]
    gone = [
        sid
        for sid, mitra_id, lost_at in active
        if lost_at is not None and lost_at <= now - grace and mitra_id not in present
    ]
    handled = _for_each_locked(lapsed, {"status": Status.ACTIVE, "mitra_lost_at__isnull": True}, lapse)
    handled += _for_each_locked(returned, {"status": Status.ACTIVE, "mitra_lost_at__isnull": False}, back)
    handled += _for_each_locked(gone, {"status": Status.ACTIVE, "mitra_lost_at__lte": now - grace}, give_up)
    return handled
