"""Every state change of payments and refunds, one function each.

The contract with sessions_app:
- `invoice_open` (outside any transaction: it calls the gateway, writes nothing),
- `payment_record` (inside the session's transaction),
- `invoice_cancel_quietly` (when that transaction failed after the invoice was opened),
- `refund_create` / `refund_retry` / `refund_settle_manually`.
The callbacks (`invoice_callback_receive`, `refund_callback_receive`) announce what happened
through `payments.hooks` (invoice_paid, invoice_unpaid, refund_issued, payment_event) while holding
the session's and then the payment's row lock; payments imports nothing of sessions_app. A
Conflict from a handler is recorded on the callback, never raised.
"""

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from halobestie.errors import Conflict, ServiceError
from halobestie.runtime.selectors import get_config
from halobestie.server import metrics
from payments import hooks, xendit
from payments.models import (
    REFUND_COUNTING_STATUSES,
    CallbackKind,
    Payment,
    PaymentCallback,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from payments.privacy import callbacks_purge_payer_data

logger = logging.getLogger(__name__)

LOCAL_INVOICE_PREFIX = "local-"
FREE_INVOICE_PREFIX = "free-"
PAID_STATUSES = ("PAID", "SETTLED")
INVOICE_STATUSES = ("PENDING", "PAID", "SETTLED", "EXPIRED", "FAILED")
REFUND_STATUSES = {
    "PENDING": RefundStatus.PENDING,
    "SUCCEEDED": RefundStatus.SUCCEEDED,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.FAILED,
}
# Xendit's refund reasons (an enum) for ours; ours goes along in the metadata.
XENDIT_REFUND_REASONS = {
    "client_cancelled": "REQUESTED_BY_CUSTOMER",
    "account_deleted": "REQUESTED_BY_CUSTOMER",
    "no_mitra": "CANCELLATION",
    "staff_ended": "CANCELLATION",
    "paid_after_close": "CANCELLATION",
    "unserved_minutes": "CANCELLATION",
}
# Headers worth keeping with a stored callback (never the token).
KEPT_HEADERS = ("content-type", "user-agent", "webhook-id", "x-request-id", "x-forwarded-for")


class InvalidCallbackToken(ServiceError):
    status_code = 401
    code = "invalid_callback_token"
    detail = "Token callback tidak valid."


class CallbackOutcome:
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    OUT_OF_ORDER = "ignored_out_of_order"
    AMOUNT_MISMATCH = "amount_mismatch"
    INVOICE_MISMATCH = "invoice_mismatch"
    UNKNOWN_REFERENCE = "unknown_reference"
    SESSION_CONFLICT = "session_conflict"
    PAID_TOO_LATE = "paid_too_late_refunded"


@dataclass(frozen=True)
class InvoiceInfo:
    invoice_id: str
    invoice_url: str
    expires_at: datetime | None


def _is_local(invoice_id: str) -> bool:
    return invoice_id.startswith(LOCAL_INVOICE_PREFIX)


def _count(status):
    transaction.on_commit(lambda: metrics.PAYMENTS.labels(status=status).inc())


def _count_refund(outcome):
    transaction.on_commit(lambda: metrics.REFUNDS.labels(outcome=outcome).inc())


def _session_event(session_id, event_kind, *, actor=None, **data):
    """The session's timeline shows payment facts too (the control center reads it): written by
    whoever listens on `hooks.on_payment_event`, inside this transaction."""
    hooks.payment_event(session_id, event_kind, actor=actor, data=data)


def _lock_session_row(session_id):
    """Lock the payment's session row (through the foreign key's model: no import of sessions)."""
    session_model = Payment._meta.get_field("session").related_model
    session_model.objects.select_for_update().filter(pk=session_id).first()


# Invoices --------------------------------------------------------------------------------------


def invoice_open(*, external_id: str, amount_idr: int, description: str) -> InvoiceInfo:
    """Open the invoice at the gateway (Xendit when XENDIT_ENABLED, else the local checkout).

    Precondition: called outside any transaction (a slow gateway must not hold row locks).
    Writes nothing. Raises XenditUnavailable (503) / XenditBadResponse (502)."""
    duration = get_config().payment_timeout_seconds
    if not settings.XENDIT_ENABLED:
        return InvoiceInfo(
            invoice_id=f"{LOCAL_INVOICE_PREFIX}{external_id}",
            invoice_url=(
                f"{settings.PUBLIC_BASE_URL}/payment/checkout/{external_id}"
                f"?key={local_checkout_key(external_id=external_id)}"
            ),
            expires_at=timezone.now() + timedelta(seconds=duration),
        )
    data = xendit.invoice_create(
        external_id=external_id, amount_idr=amount_idr, description=description, duration_seconds=duration
    )
    invoice_id, invoice_url = data.get("id"), data.get("invoice_url")
    if not (isinstance(invoice_id, str) and invoice_id and isinstance(invoice_url, str) and invoice_url):
        logger.warning("xendit invoice answer without id or url", extra={"external_id": external_id})
        raise xendit.XenditBadResponse()
    expires_at = parse_datetime(data["expiry_date"]) if isinstance(data.get("expiry_date"), str) else None
    return InvoiceInfo(
        invoice_id=invoice_id,
        invoice_url=invoice_url,
        expires_at=expires_at or timezone.now() + timedelta(seconds=duration),
    )


def payment_record(
    *,
    session,
    kind: str,
    package_code: str,
    amount_idr: int,
    external_id: str,
    invoice: InvoiceInfo,
    discount_idr: int = 0,
) -> Payment:
    """Store the payment of an opened invoice. Precondition: inside the caller's transaction,
    with the session row created or locked."""
    if kind not in PaymentKind.values:
        raise ValueError(f"unknown payment kind {kind!r}")
    payment = Payment.objects.create(
        session=session,
        kind=kind,
        package_code=package_code,
        amount_idr=amount_idr,
        discount_idr=discount_idr,
        external_id=external_id,
        invoice_id=invoice.invoice_id,
        invoice_url=invoice.invoice_url,
        expires_at=invoice.expires_at,
    )
    _count(PaymentStatus.PENDING)
    return payment


def payment_record_free(
    *, session, kind: str, package_code: str, discount_idr: int, external_id: str
) -> Payment:
    """A wholly discounted payment: no invoice at the gateway, a zero-amount record, paid at once,
    for the books. Precondition: inside the caller's transaction, the session created or locked."""
    now = timezone.now()
    payment = Payment.objects.create(
        session=session,
        kind=kind,
        package_code=package_code,
        amount_idr=0,
        discount_idr=discount_idr,
        external_id=external_id,
        invoice_id=f"{FREE_INVOICE_PREFIX}{external_id}"[:64],
        invoice_url="",
        status=PaymentStatus.PAID,
        paid_at=now,
        paid_amount_idr=0,
        payment_method="VOUCHER",
    )
    _count(PaymentStatus.PAID)
    _session_event(session.pk, "payment_free", external_id=external_id, kind=kind, discount_idr=discount_idr)
    return payment


def invoice_cancel_quietly(*, invoice: InvoiceInfo) -> None:
    """Best effort: expire an invoice nobody will use (the session could not be stored)."""
    if _is_local(invoice.invoice_id) or not settings.XENDIT_ENABLED:
        return
    try:
        xendit.invoice_expire(invoice.invoice_id)
    except xendit.XenditError:
        # If it is paid anyway, its callback finds no payment: acknowledged, logged, stored.
        logger.warning("could not expire an unused invoice", extra={"invoice_id": invoice.invoice_id})


# Callbacks -------------------------------------------------------------------------------------


def _check_token(token):
    expected = settings.XENDIT_WEBHOOK_TOKEN
    # compare_digest: no timing signal about how much of the token was right.
    if (
        not expected
        or not isinstance(token, str)
        or not hmac.compare_digest(token.encode(), expected.encode())
    ):
        logger.warning("payment callback with a wrong token refused")
        raise InvalidCallbackToken()


def _kept_headers(headers):
    headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    return {name: headers[name][:300] for name in KEPT_HEADERS if name in headers}


def _invalid(detail, field):
    return ServiceError("Isi callback tidak valid.", code="invalid_callback", fields={field: [detail]})


def _whole_rupiah(value):
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def local_checkout_key(*, external_id: str) -> str:
    """The signed key of a local checkout page: only the invoice_url handed to the session's
    client carries it, so nobody else can open (and pay) the page by guessing the external id."""
    return signing.Signer(salt="payments.local_checkout").signature(external_id)


def local_checkout_key_is_valid(*, external_id: str, key) -> bool:
    expected = local_checkout_key(external_id=external_id)
    return isinstance(key, str) and hmac.compare_digest(key.encode(), expected.encode())


def invoice_callback_receive(*, token, body, headers=None) -> PaymentCallback:
    """Apply one Xendit invoice callback (or the local checkout's, or the reconciler's: the same
    path). Idempotent per (invoice, status), safe out of order; returns the stored callback.

    - PAID / SETTLED: the payment is paid; the session enters matching (or the extension applies).
      Paid after the session closed: flagged for staff and refunded.
    - EXPIRED (FAILED from the local checkout): the pending payment ends; an unpaid session is
      cancelled. After PAID it is ignored.
    - An amount or invoice id other than ours: flagged for staff, nothing else happens.
    - An unknown external_id: stored and logged, acknowledged (Xendit retries anything but 2xx).

    Raises InvalidCallbackToken (401, nothing stored) and ServiceError `invalid_callback` (400).
    """
    _check_token(token)
    return _invoice_callback_apply(body=body, headers=headers)


def _invoice_callback_apply(*, body, headers) -> PaymentCallback:
    """The callback handler past the token check: for Xendit's webhook (token checked) and, in
    process, the local checkout and the reconciler (there is no default token to sign them)."""
    if not isinstance(body, dict):
        raise _invalid("Harus objek JSON.", "non_field_errors")
    external_id, status = body.get("external_id"), body.get("status")
    if not isinstance(external_id, str) or not external_id or len(external_id) > 100:
        raise _invalid("Wajib diisi.", "external_id")
    if status not in INVOICE_STATUSES:
        raise _invalid("Status tidak dikenal.", "status")
    gateway_id = body.get("id") if isinstance(body.get("id"), str) else ""

    session_id = Payment.objects.filter(external_id=external_id).values_list("session_id", flat=True).first()
    with transaction.atomic():
        if session_id is not None:
            # Session before payment, the order the session services use (cancel → refund locks
            # the payment): the two paths can never deadlock on each other.
            _lock_session_row(session_id)
        payment = Payment.objects.select_for_update().filter(external_id=external_id).first()
        if payment is None:
            logger.warning(
                "payment callback for an unknown external_id",
                extra={"external_id": external_id, "status": status},
            )
            outcome, detail = CallbackOutcome.UNKNOWN_REFERENCE, ""
        else:
            outcome, detail = _apply_invoice_status(payment, body, status, gateway_id)
        return PaymentCallback.objects.create(
            kind=CallbackKind.INVOICE,
            payment=payment,
            reference=external_id,
            gateway_id=gateway_id[:100],
            status=status,
            headers=_kept_headers(headers),
            body=body,
            outcome=outcome,
            outcome_detail=detail[:300],
        )


def _flag(payment, reason):
    payment.flagged_for_staff = True
    payment.flag_reason = reason[:200]
    payment.save(update_fields=["flagged_for_staff", "flag_reason", "updated_at"])
    _session_event(payment.session_id, "payment_flagged", external_id=payment.external_id, reason=reason)
    logger.warning("payment flagged for staff", extra={"external_id": payment.external_id, "reason": reason})


def _apply_invoice_status(payment, body, status, gateway_id):
    """Precondition: `payment` is locked. Returns (outcome, detail)."""
    if status == "PENDING":
        return CallbackOutcome.IGNORED, "pending"
    if gateway_id and gateway_id != payment.invoice_id:
        _flag(payment, f"invoice_mismatch: ours {payment.invoice_id}, callback {gateway_id}")
        return CallbackOutcome.INVOICE_MISMATCH, gateway_id
    is_paid = status in PAID_STATUSES
    amount = _whole_rupiah(body.get("paid_amount")) if is_paid else None
    if amount is None:
        amount = _whole_rupiah(body.get("amount"))
    # A paid callback must carry our amount; an expiry without one is still an expiry.
    if (is_paid or "amount" in body) and amount != payment.amount_idr:
        _flag(payment, f"amount_mismatch: ours {payment.amount_idr}, callback {body.get('amount')!r}")
        return CallbackOutcome.AMOUNT_MISMATCH, f"{amount}"
    if is_paid:
        return _apply_paid(payment, body, status)
    return _apply_unpaid(payment, status)


def _apply_paid(payment, body, status):
    if payment.status == PaymentStatus.PAID:
        return CallbackOutcome.DUPLICATE, status
    paid_at = parse_datetime(body["paid_at"]) if isinstance(body.get("paid_at"), str) else None
    was = payment.status
    payment.status = PaymentStatus.PAID
    payment.paid_at = paid_at or timezone.now()
    payment.paid_amount_idr = payment.amount_idr
    payment.payment_method = str(body.get("payment_method") or "")[:40]
    payment.payment_channel = str(body.get("payment_channel") or body.get("bank_code") or "")[:40]
    payment.save()
    _count(PaymentStatus.PAID)
    hooks.payment_settled(payment)
    _session_event(
        payment.session_id, "payment_paid", external_id=payment.external_id, kind=payment.kind,
        amount_idr=payment.amount_idr, method=payment.payment_method, channel=payment.payment_channel,
    )  # fmt: skip
    try:
        hooks.invoice_paid(payment)
    except Conflict as error:
        # Money was taken for a session that can no longer use it (cancelled, expired, ended).
        _flag(payment, f"paid_after_close: {error.code} (was {was})")
        refund_create(
            session=payment.session, reason="paid_after_close", amount_idr=payment.amount_idr, payment=payment
        )
        return CallbackOutcome.PAID_TOO_LATE, error.code
    return CallbackOutcome.APPLIED, status


def _apply_unpaid(payment, status):
    if payment.status == PaymentStatus.PAID:
        return CallbackOutcome.OUT_OF_ORDER, f"{status} after paid"
    target = PaymentStatus.FAILED if status == "FAILED" else PaymentStatus.EXPIRED
    if payment.status != PaymentStatus.PENDING:
        return CallbackOutcome.DUPLICATE, status
    payment.status = target
    payment.save(update_fields=["status", "updated_at"])
    _count(target)
    hooks.payment_settled(payment)
    if payment.kind != PaymentKind.SESSION:
        return CallbackOutcome.APPLIED, status
    try:
        hooks.invoice_unpaid(payment, "payment_expired")
    except Conflict as error:
        # The session moved on (cancelled by the client, or paid through another invoice).
        return CallbackOutcome.SESSION_CONFLICT, error.code
    return CallbackOutcome.APPLIED, status


def local_checkout_complete(*, external_id: str, is_paid: bool) -> PaymentCallback:
    """The local checkout's "Bayar" / "Gagal": a Xendit-shaped callback through the very same
    handler, with the local token. Only when XENDIT_ENABLED is off."""
    if settings.XENDIT_ENABLED:
        raise ServiceError("Checkout lokal tidak aktif.", code="not_found", status_code=404)
    payment = Payment.objects.filter(external_id=external_id).first()
    if payment is None:
        raise ServiceError("Pembayaran tidak ditemukan.", code="payment_not_found", status_code=404)
    now = timezone.now()
    body = {
        "id": payment.invoice_id,
        "external_id": payment.external_id,
        "status": "PAID" if is_paid else "FAILED",
        "amount": payment.amount_idr,
        "currency": xendit.CURRENCY,
        "updated": now.isoformat(),
    }
    if is_paid:
        body.update(
            paid_amount=payment.amount_idr, paid_at=now.isoformat(),
            payment_method="LOCAL", payment_channel="LOCAL_CHECKOUT",
        )  # fmt: skip
    return _invoice_callback_apply(body=body, headers={"user-agent": "local-checkout"})


def payments_expire_due(*, now=None, grace_seconds: int = 120, limit: int = 100) -> int:
    """Scheduler: pending payments well past their expiry are settled through the callback path.

    Local checkout: an EXPIRED callback is fed in (nobody else would send one). Xendit: the
    invoice is fetched and its state fed in (a lost callback is reconciled). Returns how many."""
    now = now or timezone.now()
    due = list(
        Payment.objects.filter(
            status=PaymentStatus.PENDING,
            expires_at__lte=now - timedelta(seconds=grace_seconds),
            # A flagged payment waits for staff; reconciling it every tick would add a callback
            # row per second forever and starve the others.
            flagged_for_staff=False,
        ).order_by("expires_at")[:limit]
    )
    done = 0
    for payment in due:
        try:
            done += _reconcile(payment)
        except Exception:
            logger.exception("payment reconcile failed", extra={"payment_id": str(payment.pk)})
    return done


def _reconcile(payment) -> int:
    """Feed the invoice's final state of one overdue payment through the callback path."""
    if _is_local(payment.invoice_id):
        body = {
            "id": payment.invoice_id, "external_id": payment.external_id, "status": "EXPIRED",
            "amount": payment.amount_idr,
        }  # fmt: skip
    else:
        if not settings.XENDIT_ENABLED:
            return 0
        try:
            body = xendit.invoice_get(payment.invoice_id)
        except xendit.XenditError:
            return 0  # next tick
        if body.get("status") not in INVOICE_STATUSES or body.get("status") == "PENDING":
            return 0
    _invoice_callback_apply(body=body, headers={"user-agent": "halobestie-reconciler"})
    return 1


# Refunds ---------------------------------------------------------------------------------------


def _refundable(payment) -> int:
    taken = sum(
        payment.refunds.filter(status__in=REFUND_COUNTING_STATUSES).values_list("amount_idr", flat=True)
    )
    return max(0, payment.amount_idr - taken)


def _refund_new(*, payment, session, amount_idr, reason, actor, retry_of=None) -> Refund:
    # Only money that really went through Xendit goes back through Xendit; anything else (local
    # checkout, a session marked paid by hand) waits for staff to settle.
    is_gateway = (
        settings.XENDIT_ENABLED and payment.status == PaymentStatus.PAID and not _is_local(payment.invoice_id)
    )
    refund = Refund(
        payment=payment,
        session=session,
        amount_idr=amount_idr,
        reason=reason[:40],
        status=RefundStatus.REQUESTED if is_gateway else RefundStatus.PENDING,
        is_gateway_refund=is_gateway,
        created_by=actor,
        retry_of=retry_of,
    )
    refund.save()
    _count_refund("created")
    _session_event(
        session.pk,
        "refund_created",
        actor=actor,
        refund_id=str(refund.pk),
        amount_idr=amount_idr,
        reason=reason,
    )
    if is_gateway:
        refund_id = refund.pk
        transaction.on_commit(lambda: _send_quietly(refund_id))
    hooks.refund_counted_changed(refund)
    return refund


def _send_quietly(refund_id):
    try:
        refund_send(refund_id=refund_id)
    except Exception:
        # The refund stays `requested`; the scheduler (refunds_send_due) or staff retry it.
        metrics.REFUNDS.labels(outcome="send_failed").inc()
        logger.exception("refund send after commit failed", extra={"refund_id": str(refund_id)})


def refund_create(
    *,
    session,
    reason: str,
    actor=None,
    amount_idr: int | None = None,
    payment: Payment | None = None,
    allow_nothing: bool = False,
) -> Refund | None:
    """Refund what the client paid for `session` (by default everything not yet refunded).

    Precondition: inside a transaction (the session locked by the caller when it decides).
    The session's paid payments are refunded oldest first (one Refund per payment; the first
    is returned). A session marked paid without a paid payment on record refunds its session
    payment for staff to settle. With Xendit the refund is sent after commit.
    Raises Conflict `nothing_to_refund` (returns None instead with `allow_nothing=True`, for
    automatic refunds that must not block a transition: everything may be refunded already),
    ServiceError `invalid_refund_amount`."""
    with transaction.atomic():
        query = Payment.objects.select_for_update().filter(session_id=session.pk).order_by("created_at")
        if payment is not None:
            query = query.filter(pk=payment.pk)
        payments = list(query)
        paid = [p for p in payments if p.status == PaymentStatus.PAID]
        if not paid and payment is None and session.paid_at is not None:
            paid = [p for p in payments if p.kind == PaymentKind.SESSION][:1]
        available = [(p, _refundable(p)) for p in paid]
        available = [(p, amount) for p, amount in available if amount > 0]
        total = sum(amount for _, amount in available)
        if total == 0:
            if allow_nothing:
                return None
            raise Conflict("Tidak ada pembayaran yang bisa dikembalikan.", code="nothing_to_refund")
        wanted = total if amount_idr is None else amount_idr
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 < wanted <= total:
            raise ServiceError(
                f"Jumlah refund harus antara 1 dan {total}.",
                code="invalid_refund_amount",
                fields={"amount_idr": [f"Maksimal {total}."]},
            )
        refunds = []
        for each, amount in available:
            if wanted == 0:
                break
            part = min(amount, wanted)
            refunds.append(
                _refund_new(payment=each, session=session, amount_idr=part, reason=reason, actor=actor)
            )
            wanted -= part
    return refunds[0]


def refund_send(*, refund_id) -> Refund | None:
    """Send a `requested` refund to Xendit (the idempotency key makes a resend harmless).
    Precondition: outside any transaction. Gateway errors propagate; the refund stays requested."""
    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is None or refund.status != RefundStatus.REQUESTED or not refund.is_gateway_refund:
        return refund
    Refund.objects.filter(pk=refund.pk).update(
        last_sent_at=timezone.now(), send_attempts=F("send_attempts") + 1
    )
    data = xendit.refund_create(
        idempotency_key=refund.idempotency_key,
        invoice_id=refund.payment.invoice_id,
        amount_idr=refund.amount_idr,
        reason=XENDIT_REFUND_REASONS.get(refund.reason, "OTHERS"),
        reference_id=str(refund.pk),
        metadata={"reason": refund.reason, "session_id": str(refund.session_id)},
    )
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if isinstance(data.get("id"), str) and not refund.xendit_refund_id:
            refund.xendit_refund_id = data["id"][:100]
        _refund_advance(refund, REFUND_STATUSES.get(data.get("status"), RefundStatus.PENDING), data)
        refund.save()
    return refund


def _refund_advance(refund, target, data):
    """Precondition: `refund` locked. Moves forward only (requested → pending → final)."""
    order = {RefundStatus.REQUESTED: 0, RefundStatus.PENDING: 1}
    if refund.status not in order or order.get(target, 2) <= order[refund.status]:
        return False
    refund.status = target
    if target == RefundStatus.FAILED:
        refund.failure_code = str(data.get("failure_code") or "")[:100]
    if target in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        refund.settled_at = timezone.now()
        _count_refund(RefundStatus(target).value)
        _session_event(
            refund.session_id,
            f"refund_{RefundStatus(target).value}",
            refund_id=str(refund.pk),
            amount_idr=refund.amount_idr,
        )
    if target == RefundStatus.SUCCEEDED:
        hooks.refund_issued(refund)
    if target == RefundStatus.FAILED:
        refund.save()
        hooks.refund_counted_changed(refund)
    return True


def refund_callback_receive(*, token, body, headers=None) -> PaymentCallback:
    """Apply one Xendit refund callback (`{"event": "refund.succeeded", "data": {…}}`): the refund
    is found by `reference_id` (our id) or Xendit's id, and moves forward only. Unknown refunds
    are stored and acknowledged. Raises InvalidCallbackToken (401) and `invalid_callback` (400)."""
    _check_token(token)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise _invalid("Harus objek JSON dengan 'data'.", "data")
    data = body["data"]
    status = data.get("status")
    if status not in REFUND_STATUSES:
        raise _invalid("Status tidak dikenal.", "data.status")
    reference = data.get("reference_id") if isinstance(data.get("reference_id"), str) else ""
    gateway_id = data.get("id") if isinstance(data.get("id"), str) else ""

    with transaction.atomic():
        refund = None
        if reference:
            refund = Refund.objects.select_for_update().filter(idempotency_key=reference).first()
        if refund is None and gateway_id:
            refund = Refund.objects.select_for_update().filter(xendit_refund_id=gateway_id).first()
        if refund is None:
            logger.warning("refund callback for an unknown refund", extra={"reference": reference})
            outcome, detail = CallbackOutcome.UNKNOWN_REFERENCE, ""
        elif _whole_rupiah(data.get("amount")) not in (None, refund.amount_idr):
            outcome, detail = CallbackOutcome.AMOUNT_MISMATCH, str(data.get("amount"))[:50]
            payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
            _flag(
                payment, f"refund_amount_mismatch: ours {refund.amount_idr}, callback {data.get('amount')!r}"
            )
        else:
            if gateway_id and not refund.xendit_refund_id:
                refund.xendit_refund_id = gateway_id[:100]
            moved = _refund_advance(refund, REFUND_STATUSES[status], data)
            refund.save()
            outcome, detail = (CallbackOutcome.APPLIED if moved else CallbackOutcome.DUPLICATE), status
        return PaymentCallback.objects.create(
            kind=CallbackKind.REFUND,
            refund=refund,
            payment_id=refund.payment_id if refund else None,
            reference=reference[:100],
            gateway_id=gateway_id[:100],
            status=status,
            headers=_kept_headers(headers),
            body=body,
            outcome=outcome,
            outcome_detail=detail[:300],
        )


def refund_settle_manually(*, refund, actor) -> Refund:
    """Staff paid the money back outside Xendit (bank transfer, local checkout). Allowed while
    the refund is requested, pending or failed. Raises Conflict `refund_already_settled`."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status not in (RefundStatus.REQUESTED, RefundStatus.PENDING, RefundStatus.FAILED):
            raise Conflict("Refund ini sudah selesai.", code="refund_already_settled")
        if refund.is_gateway_refund and refund.status != RefundStatus.FAILED:
            # Xendit may still pay it (a send that timed out may have arrived): settling by hand
            # now could pay the client twice. Only a refund Xendit reported failed is settled here.
            raise Conflict(
                "Refund ini masih diproses Xendit; selesaikan manual hanya setelah gagal.",
                code="refund_in_progress_at_gateway",
            )
        refund.status = RefundStatus.MANUAL_SETTLED
        refund.settled_by = actor
        refund.settled_at = timezone.now()
        refund.save()
        _session_event(
            refund.session_id, "refund_manual_settled", actor=actor, refund_id=str(refund.pk),
            amount_idr=refund.amount_idr,
        )  # fmt: skip
        hooks.refund_issued(refund)
    return refund


def refund_retry(*, refund, actor) -> Refund:
    """Try a refund again. `requested` (never confirmed by Xendit): resent with the same
    idempotency key, the same refund is returned. `failed`: a new refund (a new key) for the same
    payment and amount, pointing back at it. Raises Conflict `refund_not_retryable`."""
    with transaction.atomic():
        # The session first, the lock order of the session services (a new refund books into the
        # session's ledger under its lock).
        _lock_session_row(refund.session_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == RefundStatus.REQUESTED and refund.is_gateway_refund:
            refund_id = refund.pk
            transaction.on_commit(lambda: _send_quietly(refund_id))
            return refund
        if refund.status != RefundStatus.FAILED:
            raise Conflict("Refund ini tidak bisa dicoba ulang.", code="refund_not_retryable")
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        if _refundable(payment) < refund.amount_idr:
            raise Conflict("Pembayaran ini sudah dikembalikan.", code="nothing_to_refund")
        return _refund_new(
            payment=payment, session=refund.session, amount_idr=refund.amount_idr, reason=refund.reason,
            actor=actor, retry_of=refund,
        )  # fmt: skip


def refunds_send_due(*, now=None, min_age_seconds: int = 60, limit: int = 50) -> int:
    """Scheduler: resend gateway refunds still `requested` a minute after their last try."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=min_age_seconds)
    ids = list(
        Refund.objects.filter(status=RefundStatus.REQUESTED, is_gateway_refund=True, created_at__lte=cutoff)
        .exclude(last_sent_at__gt=cutoff)
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for refund_id in ids:
        try:
            refund_send(refund_id=refund_id)
            sent += 1
        except xendit.XenditError:
            metrics.REFUNDS.labels(outcome="send_failed").inc()
            continue
    return sent


def scheduler_jobs():
    """(name, job(now=…)) pairs for the scheduler loop."""
    return [
        ("payments_expire_due", lambda now: payments_expire_due(now=now)),
        ("refunds_send_due", lambda now: refunds_send_due(now=now)),
        ("callbacks_purge_payer_data", lambda now: callbacks_purge_payer_data(now=now)),
    ]
