"""Fair money: what a Bestie earns for a session, what goes back to the client, and the ledger.

The rule (docs/payments.md, "Fair money"):
- The client pays for minutes: the package's plus every paid extension's (`paid minutes`).
- Served minutes: whole minutes from acceptance until the session ended, or until the Bestie's
  presence lapsed when the Bestie was lost. A started minute that was not completed is not served
  (rounded down: never charged to the client).
- The client ended early, the time ran out, the client erased the account: rule `full`. The client
  got what they chose; nothing goes back; the Bestie earns the share of the whole price.
- The Bestie ended early, the Bestie was lost (no heartbeats past the grace), staff ended the
  session for the Bestie's fault (deactivation) or for no one's fault (plain force end): rule
  `served`. The client automatically gets the unserved minutes back,
  `ceil(price × unserved / paid minutes)` (rounded up: in the client's favour), less what staff
  refunded while the session ran, through the refund service (Xendit's refund API with an
  idempotency key, or the local path); the Bestie earns the share of what is left.
- Staff ended the session for the client's fault (a report against the client upheld): runtime
  config `client_fault_end_policy`, `full` (default) or `served`.
- The Bestie's part is `floor(basis × share / 100)` (whole rupiah; the platform carries the
  fraction), the platform's part is client net − the Bestie's part. The share is the package's
  `mitra_share_percent` from the runtime config, else the global `mitra_share_percent`; fixed at
  settlement. The basis is the client's net, unless a voucher discounted the session and runtime
  config `mitra_share_basis` is `list_price` (default: promotions are the platform's cost): then
  it is the client's net plus the discount in the same proportion (net / paid, i.e. the discount
  of the served part; for a 100 % voucher the list price of the served minutes), and the
  platform's part may be negative. A later refund scales the basis the same way. The basis used
  is on every row (`price_basis`, `basis_amount_idr`). See `share_basis`.

The ledger (`EarningsEntry`) is append-only. The end books one `earning` row. Whatever changes the
client's net afterwards (a staff refund, a refund that failed) books the difference (`reversal` /
`correction`) so that, for every settled session, at all times:
    paid − refunded = client net,   Bestie earnings + platform share = client net.
`sessions_app.selectors.session_money` computes both sides. Every row lands in a payout period
(sessions_app/payouts.py); a period already paid out is never written to again.
"""

import math
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.errors import Conflict, ServiceError
from halobestie.runtime.selectors import get_config
from payments.services import refund_create
from sessions_app import payouts
from sessions_app.models import ChatSession, EarningsEntry, EndReason, EntryKind, PriceBasis, SessionEvent
from sessions_app.selectors import session_money

RULE_FULL = "full"
RULE_SERVED = "served"

# Who staff found at fault when they ended a session (recorded with the end).
FAULT_NONE = ""
FAULT_MITRA = "mitra"
FAULT_CLIENT = "client"
FAULTS = (FAULT_NONE, FAULT_MITRA, FAULT_CLIENT)

FULL_REASONS = (EndReason.CLIENT_ENDED, EndReason.EXPIRED, EndReason.ACCOUNT_DELETED)
SERVED_REASONS = (EndReason.MITRA_ENDED, EndReason.MITRA_LOST)

# Refund.reason of the automatic refund of unserved minutes, and of a staff refund.
REFUND_UNSERVED = "unserved_minutes"
REFUND_STAFF = "staff_decision"


# The rule (pure) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    rule: str
    paid_minutes: int
    served_minutes: int
    refund_idr: int  # what goes back to the client automatically (unserved minutes)


def paid_minutes(*, duration_seconds: int, extended_seconds: int) -> int:
    return (duration_seconds + extended_seconds) // 60


def served_minutes(*, accepted_at, served_until, paid: int) -> int:
    """Whole minutes served, between 0 and the minutes paid for."""
    if accepted_at is None or served_until is None:
        return 0
    seconds = int((served_until - accepted_at).total_seconds())
    return max(0, min(paid, seconds // 60))


def rule_for(*, reason: str, fault: str = FAULT_NONE, client_fault_policy: str = RULE_FULL) -> str:
    if reason in FULL_REASONS:
        return RULE_FULL
    if reason == EndReason.STAFF_ENDED and fault == FAULT_CLIENT:
        return client_fault_policy
    return RULE_SERVED


def unserved_refund(*, price_idr: int, paid: int, served: int) -> int:
    """The price of the unserved minutes, rounded up to the rupiah (in the client's favour)."""
    if paid <= 0 or served >= paid:
        return 0
    return math.ceil(price_idr * (paid - served) / paid)


def share_basis(
    *,
    price_basis: str,
    client_net_idr: int,
    paid_idr: int,
    discount_idr: int,
    rule: str,
    paid_minutes: int,
    served_minutes: int,
) -> int:
    """What the Bestie's share is taken of. `paid_price`, or no discount: the client's net.
    `list_price` with a discount: the net plus the discount in the proportion the client keeps
    paying for, `floor(discount × net / paid)` (all of it when nothing went back; none when
    everything did). A 100 % voucher (nothing paid): the list price of the served minutes under
    rule `served` (the discount less its unserved part, rounded like the refund), all of it
    under rule `full`."""
    net = max(0, client_net_idr)
    if price_basis != PriceBasis.LIST_PRICE or discount_idr <= 0:
        return net
    if paid_idr > 0:
        return net + discount_idr * net // paid_idr
    if rule == RULE_FULL:
        return discount_idr
    return discount_idr - unserved_refund(price_idr=discount_idr, paid=paid_minutes, served=served_minutes)


def split_on_basis(*, client_net_idr: int, basis_idr: int, share_percent: int) -> tuple[int, int]:
    """(Bestie, platform): the Bestie's part rounded down from the basis, the platform's part the
    rest of the client's net (negative when a list-price basis exceeds what the client pays)."""
    mitra = max(0, basis_idr) * share_percent // 100
    return mitra, max(0, client_net_idr) - mitra


def settle(
    *,
    reason: str,
    fault: str,
    client_fault_policy: str,
    price_idr: int,
    duration_seconds: int,
    extended_seconds: int,
    accepted_at,
    served_until,
) -> Settlement:
    """The rule applied to one session's facts (no database)."""
    paid = paid_minutes(duration_seconds=duration_seconds, extended_seconds=extended_seconds)
    served = served_minutes(accepted_at=accepted_at, served_until=served_until, paid=paid)
    rule = rule_for(reason=reason, fault=fault, client_fault_policy=client_fault_policy)
    refund = 0 if rule == RULE_FULL else unserved_refund(price_idr=price_idr, paid=paid, served=served)
    return Settlement(rule=rule, paid_minutes=paid, served_minutes=served, refund_idr=refund)


def _served_until(session):
    if session.end_reason == EndReason.MITRA_LOST and session.mitra_lost_at is not None:
        return min(session.mitra_lost_at, session.ended_at)
    return session.ended_at


# Booking (services) --------------------------------------------------------------------------


def session_settle(*, session, fault: str = FAULT_NONE, now) -> EarningsEntry:
    """Settle a session that just ended: refund the unserved minutes when the rule says so, then
    book the `earning` row. Precondition: inside the transaction of `_end_active`, the session
    row locked and already `ended` (end_reason, ended_at set)."""
    config = get_config()
    decision = settle(
        reason=session.end_reason,
        fault=fault,
        client_fault_policy=config.client_fault_end_policy,
        # The unserved minutes go back at the price the client paid (after any voucher).
        price_idr=max(0, session.price_idr + session.extensions_total_idr - session.discount_idr),
        duration_seconds=session.duration_seconds,
        extended_seconds=session.extended_seconds,
        accepted_at=session.accepted_at,
        served_until=_served_until(session),
    )
    # What staff gave back while the session ran counts towards the unserved minutes: the client
    # gets the unserved part back once, in whichever order the two happened.
    money = session_money(session=session)
    refund_idr = max(0, min(decision.refund_idr - money.refunded_idr, money.client_net_idr))
    if refund_idr > 0:
        refund_create(session=session, reason=REFUND_UNSERVED, amount_idr=refund_idr, allow_nothing=True)
    share = config.share_percent_for(session.package_code)
    after = session_money(session=session)
    basis_idr = share_basis(
        price_basis=config.mitra_share_basis,
        client_net_idr=after.client_net_idr,
        paid_idr=after.paid_idr,
        discount_idr=session.discount_idr,
        rule=decision.rule,
        paid_minutes=decision.paid_minutes,
        served_minutes=decision.served_minutes,
    )
    mitra_idr, platform_idr = split_on_basis(
        client_net_idr=after.client_net_idr, basis_idr=basis_idr, share_percent=share
    )
    entry = _book(
        session,
        kind=EntryKind.EARNING,
        amount_idr=mitra_idr,
        platform_idr=platform_idr,
        share_percent=share,
        paid_minutes=decision.paid_minutes,
        served_minutes=decision.served_minutes,
        reason=f"{session.end_reason}/{decision.rule}" + (f"/{fault}_fault" if fault else ""),
        now=now,
        price_basis=config.mitra_share_basis,
        basis_amount_idr=basis_idr,
    )
    SessionEvent.objects.create(
        session=session,
        kind="settled",
        data={
            "rule": decision.rule, "paid_minutes": decision.paid_minutes,
            "served_minutes": decision.served_minutes, "refund_idr": refund_idr,
            "mitra_idr": mitra_idr, "platform_idr": platform_idr, "share_percent": share,
            "price_basis": config.mitra_share_basis, "basis_amount_idr": basis_idr,
            "discount_idr": session.discount_idr,
        },
    )  # fmt: skip
    return entry


def ledger_follow(*, session_id, reason: str, now=None):
    """The client's net of a session changed (a refund was created, or one failed): book the
    difference against what the ledger holds, so both invariants hold again. A session not yet
    settled is left alone (its `earning` row will see the new net). Idempotent: with nothing to
    book it books nothing. Locks the session row (the caller's transaction may hold it already).
    Returns the new row or None."""
    with transaction.atomic():
        session = ChatSession.objects.select_for_update(of=("self",)).get(pk=session_id)
        earning = EarningsEntry.objects.filter(session=session, kind=EntryKind.EARNING).first()
        if earning is None:
            return None
        money = session_money(session=session)
        # The basis of the earning row (fixed at settlement), scaled to the new net.
        target_basis = share_basis(
            price_basis=earning.price_basis,
            client_net_idr=money.client_net_idr,
            paid_idr=money.paid_idr,
            discount_idr=session.discount_idr,
            rule=_rule_of(earning),
            paid_minutes=earning.paid_minutes,
            served_minutes=earning.served_minutes,
        )
        target_mitra, target_platform = split_on_basis(
            client_net_idr=money.client_net_idr, basis_idr=target_basis, share_percent=earning.share_percent
        )
        booked = EarningsEntry.objects.filter(session=session).aggregate(
            mitra=Sum("amount_idr"), platform=Sum("platform_idr"), basis=Sum("basis_amount_idr")
        )
        mitra_delta = target_mitra - (booked["mitra"] or 0)
        platform_delta = target_platform - (booked["platform"] or 0)
        if mitra_delta == 0 and platform_delta == 0:
            return None
        gross = mitra_delta + platform_delta
        kind = EntryKind.REVERSAL if gross < 0 or (gross == 0 and mitra_delta < 0) else EntryKind.CORRECTION
        return _book(
            session,
            kind=kind,
            amount_idr=mitra_delta,
            platform_idr=platform_delta,
            share_percent=earning.share_percent,
            reason=reason,
            now=now or timezone.now(),
            price_basis=earning.price_basis,
            basis_amount_idr=target_basis - (booked["basis"] or 0),
        )


def _rule_of(earning) -> str:
    """The rule an earning row was settled under (its reason is `end_reason/rule[/fault]`)."""
    parts = earning.reason.split("/")
    return parts[1] if len(parts) > 1 and parts[1] in (RULE_FULL, RULE_SERVED) else RULE_FULL


def ledger_follow_refund(refund):
    """payments.hooks.on_refund_counted_changed: a refund was made or failed."""
    ledger_follow(session_id=refund.session_id, reason=f"refund_{refund.status}:{refund.reason}"[:60])


def _book(session, *, kind, amount_idr, platform_idr, share_percent, reason, now, **fields):
    return EarningsEntry.objects.create(
        mitra_id=session.mitra_id,
        session=session,
        kind=kind,
        amount_idr=amount_idr,
        platform_idr=platform_idr,
        share_percent=share_percent,
        reason=reason[:60],
        period=payouts.period_for_booking(now=now),
        **fields,
    )


def session_refund_by_staff(*, session_id, actor, amount_idr: int, note: str, request=None):
    """Finance gives (part of) a session's money back: at most paid − already refunded, a reason
    is required, the refund goes through `payments.services.refund_create` (Xendit with its
    idempotency key, or the local path), the ledger books the reversal, the action is audited.
    Raises ServiceError `validation_error` (no reason), `invalid_refund_amount`; Conflict
    `nothing_to_refund`, `session_not_paid`."""
    note = (note or "").strip()
    if not note:
        raise ServiceError(
            "Alasan refund wajib diisi.", code="validation_error", fields={"note": ["Wajib diisi."]}
        )
    if isinstance(amount_idr, bool) or not isinstance(amount_idr, int) or amount_idr <= 0:
        raise ServiceError(
            "Jumlah refund harus rupiah bulat positif.",
            code="invalid_refund_amount",
            fields={"amount_idr": ["Harus bilangan bulat positif."]},
        )
    with transaction.atomic():
        session = ChatSession.objects.select_for_update(of=("self",)).get(pk=session_id)
        if session.paid_at is None:
            raise Conflict("Sesi ini belum dibayar.", code="session_not_paid")
        before = session_money(session=session)
        refund = refund_create(session=session, reason=REFUND_STAFF, actor=actor, amount_idr=amount_idr)
        if session.needs_refund_review:
            ChatSession.objects.filter(pk=session.pk).update(needs_refund_review=False)
        after = session_money(session=session)
        SessionEvent.objects.create(
            session=session, kind="staff_refund", actor=actor, data={"amount_idr": amount_idr, "note": note}
        )
        audit_record(
            actor=actor, action="refund", obj=session, request=request,
            before={"refunded_idr": before.refunded_idr, "mitra_idr": before.mitra_idr},
            after={
                "refund_id": str(refund.pk), "amount_idr": amount_idr, "note": note,
                "refunded_idr": after.refunded_idr, "mitra_idr": after.mitra_idr,
            },
        )  # fmt: skip
    return refund
