"""Every state change of promotions, one function each.

The contract with sessions_app and payments:
- `voucher_quote` (outside any transaction): the price of a package with a code, or a refusal
  (`VoucherRefused`). Counts the lookup against the client's limits; reserves nothing.
- `redemption_reserve` (inside the session's transaction, after its payment row exists): takes
  one use of the code under the voucher's row lock, re-checking every rule.
- `redemption_consume` (the payment was paid), `redemptions_release_for_payment` (the invoice
  expired or failed), `redemptions_release_for_session` (the session ended before a Bestie ever
  accepted it: cancelled or unmatched, refunded). Lock order: session → payment → voucher.

Refund rule: a redemption goes back to the code only when its session never started (cancelled
before acceptance, or unmatched). A refund of a session that ran (staff, partial or whole) keeps
the redemption consumed: the promotion was used.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.db.purge import delete_if_any
from halobestie.errors import Conflict, NotFound, ServiceError, TooManyRequests
from halobestie.runtime.selectors import get_config
from promotions.models import (
    Campaign,
    DiscountKind,
    PhoneMark,
    Redemption,
    RedemptionStatus,
    Voucher,
    VoucherLookup,
)
from sessions_app.models import ChatSession

KIND_SESSION = "session"
KIND_EXTENSION = "extension"
CODE_FORMAT = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,31}$")
LOOKUP_RETENTION = timedelta(days=1)


# Refusals the apps switch on (`error.code`), one class each -----------------------------------


class VoucherRefused(ServiceError):
    """A code that does not apply. `fields.voucher_code` repeats the reason for forms."""

    def __init__(self, detail=None):
        super().__init__(detail, fields={"voucher_code": [detail or self.detail]})


class VoucherUnknown(VoucherRefused, NotFound):
    code = "voucher_unknown"
    detail = "Kode promo tidak ditemukan atau sudah tidak berlaku."


class VoucherExpired(VoucherRefused, Conflict):
    code = "voucher_expired"
    detail = "Kode promo ini sudah kedaluwarsa."


class VoucherUsedUp(VoucherRefused, Conflict):
    code = "voucher_used_up"
    detail = "Kuota kode promo ini sudah habis."


class VoucherClientLimit(VoucherRefused, Conflict):
    code = "voucher_already_used"
    detail = "Kamu sudah memakai kode promo ini sebanyak yang diizinkan."


class VoucherNotForPackage(VoucherRefused):
    code = "voucher_not_for_package"
    detail = "Kode promo ini tidak berlaku untuk paket yang dipilih."


class VoucherNotForExtension(VoucherRefused):
    code = "voucher_not_for_extension"
    detail = "Kode promo ini tidak berlaku untuk perpanjangan sesi."


class VoucherNotFirstSession(VoucherRefused, Conflict):
    code = "voucher_not_first_session"
    detail = "Kode promo ini hanya berlaku untuk sesi berbayar pertamamu."


class VoucherChanged(VoucherRefused, Conflict):
    code = "voucher_changed"
    detail = "Ketentuan kode promo baru saja berubah. Cek lagi harganya."


class VoucherLookupLimit(TooManyRequests):
    code = "voucher_lookup_limit"
    detail = "Terlalu banyak percobaan kode promo. Coba lagi nanti."


# Prices ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """The price of one package for one payment. `voucher_id` is None without a code."""

    package_code: str
    list_price_idr: int
    discount_idr: int
    amount_idr: int
    voucher_id: int | None = None
    code: str = ""
    campaign_name: str = ""

    @property
    def is_free(self) -> bool:
        return self.amount_idr == 0


def normalize_code(code) -> str:
    return code.strip().upper() if isinstance(code, str) else ""


def discount_for(*, campaign: Campaign, list_price_idr: int, minimum_idr: int) -> int:
    """The discount in whole rupiah (percentages round down: the client never pays a fraction).

    Xendit refuses invoices under its minimum: a discount that would leave something between 0
    and the minimum is clamped so the client pays exactly the minimum. Only a discount covering
    the whole price makes the payment free (no invoice at all)."""
    if campaign.discount_kind == DiscountKind.PERCENT:
        discount = list_price_idr * campaign.discount_value // 100
    else:
        discount = campaign.discount_value
    if campaign.max_discount_idr is not None:
        discount = min(discount, campaign.max_discount_idr)
    discount = max(0, min(discount, list_price_idr))
    amount = list_price_idr - discount
    if 0 < amount < minimum_idr:
        discount = max(0, list_price_idr - minimum_idr)
    return discount


def quote_without_voucher(*, package) -> Quote:
    return Quote(
        package_code=package.code,
        list_price_idr=package.price_idr,
        discount_idr=0,
        amount_idr=package.price_idr,
    )


def phone_hash(phone: str) -> str:
    """HMAC-SHA256 of an E.164 phone with PHONE_HASH_SECRET: the same phone, the same mark; no
    way back to the number without the secret."""
    key = settings.PHONE_HASH_SECRET.encode()
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


def client_had_session(*, client) -> bool:
    """Has this client (or an erased account on the same phone) ever had a session a Bestie
    accepted? A paid session that never started (cancelled, unmatched, refunded) does not count."""
    if ChatSession.objects.filter(client=client, accepted_at__isnull=False).exists():
        return True
    return bool(client.phone) and PhoneMark.objects.filter(phone_hash=phone_hash(client.phone)).exists()


def _check(*, voucher, client, package_code, kind, now):
    """Every rule of the code for this client, cheapest first. Raises a VoucherRefused."""
    campaign = voucher.campaign
    if not campaign.is_active or now < campaign.starts_at:
        raise VoucherUnknown()
    if now >= campaign.ends_at:
        # Told as expired only to a client who used the campaign before; to a stranger an expired
        # code looks exactly like an unknown one (no enumeration of old codes).
        has_used = Redemption.objects.filter(campaign=campaign, client=client).exists()
        raise VoucherExpired() if has_used else VoucherUnknown()
    if kind == KIND_EXTENSION and not campaign.applies_to_extensions:
        raise VoucherNotForExtension()
    if campaign.valid_packages and package_code not in campaign.valid_packages:
        raise VoucherNotForPackage()
    if campaign.is_first_session_only and (kind != KIND_SESSION or client_had_session(client=client)):
        raise VoucherNotFirstSession()
    used = Redemption.objects.filter(
        campaign=campaign, client=client, status__in=[RedemptionStatus.RESERVED, RedemptionStatus.CONSUMED]
    ).count()
    if used >= campaign.max_redemptions_per_client:
        raise VoucherClientLimit()
    if voucher.max_redemptions is not None and voucher.redemptions_taken >= voucher.max_redemptions:
        raise VoucherUsedUp()


def _advisory_lock(key: str):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _count_lookup(*, client, code, now) -> Voucher | None:
    """Refuse (429) past the client's lookup limits, then record this lookup. Its own
    transaction: a refused session creation still counts its failed code."""
    window_start = now - timedelta(seconds=settings.VOUCHER_LOOKUP_WINDOW_SECONDS)
    with transaction.atomic():
        _advisory_lock(f"voucher-lookup:{client.pk}")
        recent = VoucherLookup.objects.filter(user=client, created_at__gt=window_start)
        stats = recent.aggregate(
            total=Count("id"), failed=Count("id", filter=Q(is_known=False)), first=Min("created_at")
        )
        if (
            stats["total"] >= settings.VOUCHER_MAX_LOOKUPS_PER_USER
            or stats["failed"] >= settings.VOUCHER_MAX_FAILED_LOOKUPS_PER_USER
        ):
            retry = stats["first"] + timedelta(seconds=settings.VOUCHER_LOOKUP_WINDOW_SECONDS) - now
            raise VoucherLookupLimit(retry_after=max(1, int(retry.total_seconds()) + 1))
        # Anything that cannot be a code (NUL bytes, spaces, 5 KB) is an unknown code, unqueried.
        is_well_formed = bool(CODE_FORMAT.match(code))
        voucher = (
            Voucher.objects.select_related("campaign").filter(code=code).first() if is_well_formed else None
        )
        VoucherLookup.objects.create(user=client, is_known=voucher is not None, created_at=now)
    return voucher


def voucher_quote(*, client, code, package, kind: str = KIND_SESSION, now: datetime | None = None) -> Quote:
    """The price of `package` with `code` for `client`. Precondition: outside any transaction.
    Raises a VoucherRefused subclass, or VoucherLookupLimit (429)."""
    now = now or timezone.now()
    code = normalize_code(code)
    voucher = _count_lookup(client=client, code=code, now=now)
    if voucher is None:
        raise VoucherUnknown()
    _check(voucher=voucher, client=client, package_code=package.code, kind=kind, now=now)
    discount = discount_for(
        campaign=voucher.campaign,
        list_price_idr=package.price_idr,
        minimum_idr=get_config().xendit_min_invoice_idr,
    )
    return Quote(
        package_code=package.code,
        list_price_idr=package.price_idr,
        discount_idr=discount,
        amount_idr=package.price_idr - discount,
        voucher_id=voucher.pk,
        code=voucher.code,
        campaign_name=voucher.campaign.name,
    )


def price_quote(*, client, package, code=None, kind: str = KIND_SESSION) -> Quote:
    """The price to invoice: the list price without a code, else `voucher_quote`'s."""
    if code is None or (isinstance(code, str) and not code.strip()):
        return quote_without_voucher(package=package)
    return voucher_quote(client=client, code=code, package=package, kind=kind)


# Redemptions -----------------------------------------------------------------------------------


def redemption_reserve(*, quote: Quote, client, session, payment, now=None) -> Redemption | None:
    """Take one use of the quoted code for `payment`. Precondition: inside the transaction that
    stores the session/payment (rolled back with it on refusal). The voucher row is locked, so
    concurrent clients queue here and the rules (total and per-client limits above all) are
    decided one at a time. Raises a VoucherRefused subclass; None without a voucher."""
    if quote.voucher_id is None:
        return None
    now = now or timezone.now()
    voucher = Voucher.objects.select_for_update().select_related("campaign").get(pk=quote.voucher_id)
    _check(voucher=voucher, client=client, package_code=quote.package_code, kind=payment.kind, now=now)
    discount = discount_for(
        campaign=voucher.campaign,
        list_price_idr=quote.list_price_idr,
        minimum_idr=get_config().xendit_min_invoice_idr,
    )
    if discount != quote.discount_idr:
        raise VoucherChanged()
    Voucher.objects.filter(pk=voucher.pk).update(redemptions_taken=F("redemptions_taken") + 1)
    return Redemption.objects.create(
        voucher=voucher,
        campaign_id=voucher.campaign_id,
        client=client,
        session=session,
        payment=payment,
        list_price_idr=quote.list_price_idr,
        discount_idr=quote.discount_idr,
        amount_idr=quote.amount_idr,
        reserved_at=now,
    )


def redemption_consume(*, payment, now=None) -> bool:
    """The payment was paid (or was free): its reserved redemption is consumed. A released one
    stays released (the money of a late payment goes back). Precondition: inside the payment's
    transaction."""
    consumed = Redemption.objects.filter(payment=payment, status=RedemptionStatus.RESERVED).update(
        status=RedemptionStatus.CONSUMED, consumed_at=now or timezone.now()
    )
    return consumed == 1


def _release(redemption_ids, *, statuses, reason, now) -> int:
    released = 0
    for redemption in Redemption.objects.filter(pk__in=redemption_ids).order_by("voucher_id", "pk"):
        Voucher.objects.select_for_update().filter(pk=redemption.voucher_id).first()
        changed = Redemption.objects.filter(pk=redemption.pk, status__in=statuses).update(
            status=RedemptionStatus.RELEASED, released_at=now, release_reason=reason[:40]
        )
        if changed:
            Voucher.objects.filter(pk=redemption.voucher_id).update(
                redemptions_taken=F("redemptions_taken") - 1
            )
            released += 1
    return released


def redemptions_on_payment_settled(payment):
    """Hook (payments.hooks.on_payment_settled): paid → consumed; expired or failed → released."""
    from payments.models import PaymentStatus

    if payment.status == PaymentStatus.PAID:
        redemption_consume(payment=payment)
    else:
        redemptions_release_for_payment(payment=payment, reason=f"payment_{payment.status}")


def redemptions_release_for_payment(*, payment, reason: str, now=None) -> int:
    """The invoice expired or failed: a reserved redemption goes back to its code."""
    ids = list(Redemption.objects.filter(payment=payment).values_list("pk", flat=True))
    return _release(ids, statuses=[RedemptionStatus.RESERVED], reason=reason, now=now or timezone.now())


def redemptions_release_for_session(*, session, reason: str, now=None) -> int:
    """The session ended before a Bestie accepted it (cancelled or unmatched; what was paid is
    refunded): its redemptions, reserved or consumed, go back to their codes. A session that ran
    keeps them. Precondition: the session is locked by the caller."""
    if session.accepted_at is not None:
        return 0
    ids = list(Redemption.objects.filter(session=session).values_list("pk", flat=True))
    return _release(
        ids,
        statuses=[RedemptionStatus.RESERVED, RedemptionStatus.CONSUMED],
        reason=reason,
        now=now or timezone.now(),
    )


# Erasure ----------------------------------------------------------------------------------------


def phone_mark_on_erasure(user, phone):
    """Hook (accounts.hooks.on_client_phone_erasing): inside the erasure's transaction, before the phone
    is cleared. Keeps only the phone's keyed hash, and only if the client ever had a session."""
    if phone and ChatSession.objects.filter(client=user, accepted_at__isnull=False).exists():
        PhoneMark.objects.get_or_create(phone_hash=phone_hash(phone))


def voucher_lookups_purge(*, now=None) -> int:
    # No transaction (and no write lock on SQLite) on the usual tick with nothing to purge.
    return delete_if_any(
        VoucherLookup.objects.filter(created_at__lt=(now or timezone.now()) - LOOKUP_RETENTION)
    )


def scheduler_jobs():
    """(name, job(now=…)) pairs for the project scheduler (halobestie/scheduler.py)."""
    return [("voucher_lookups_purge", lambda now: voucher_lookups_purge(now=now))]


# Control center ---------------------------------------------------------------------------------


def voucher_save(*, voucher, actor, request=None) -> bool:
    """Create a code, or change an existing code's total limit (its code and its counter are
    never rewritten from a form). The limit is changed under the voucher's row lock and never
    below the uses already taken; returns False (nothing changed) when it would be. Audited."""
    if voucher.pk is None:
        voucher.redemptions_taken = 0
        voucher.save()
        audit_record(
            actor=actor, action="voucher_create", obj=voucher, request=request,
            after={"code": voucher.code, "max_redemptions": voucher.max_redemptions},
        )  # fmt: skip
        return True
    with transaction.atomic():
        locked = Voucher.objects.select_for_update().get(pk=voucher.pk)
        limit = voucher.max_redemptions
        if limit is not None and limit < locked.redemptions_taken:
            return False
        Voucher.objects.filter(pk=locked.pk).update(max_redemptions=limit)
        audit_record(
            actor=actor, action="voucher_change", obj=locked, request=request,
            before={"max_redemptions": locked.max_redemptions}, after={"max_redemptions": limit},
        )  # fmt: skip
    return True


def vouchers_generate(*, campaign, count: int, prefix: str, max_redemptions: int | None, actor, request=None):
    """A batch of `count` unique random codes `<PREFIX>-XXXXXXXX` for one campaign (audited)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed
    prefix = normalize_code(prefix)
    if not 1 <= count <= 10_000 or len(prefix) > 12:
        raise ServiceError("Jumlah 1–10.000 kode, awalan maks. 12 karakter.", code="invalid_batch")
    with transaction.atomic():
        codes = set()
        while len(codes) < count:
            body = "".join(secrets.choice(alphabet) for _ in range(8))
            code = f"{prefix}-{body}" if prefix else body
            if code not in codes and not Voucher.objects.filter(code=code).exists():
                codes.add(code)
        Voucher.objects.bulk_create(
            [Voucher(campaign=campaign, code=code, max_redemptions=max_redemptions) for code in sorted(codes)]
        )
        audit_record(
            actor=actor, action="vouchers_generate", obj=campaign, request=request,
            after={"count": count, "prefix": prefix, "max_redemptions": max_redemptions},
        )  # fmt: skip
    return sorted(codes)
