"""Promotions: campaigns (the rules), vouchers (the codes) and redemptions (one use of a code).

Only `promotions/services.py` changes these rows. Money is whole rupiah; times are UTC.
A voucher's `redemptions_taken` counts reserved and consumed redemptions; it changes only under
the voucher's row lock (redemption_reserve / redemption_release), so the last slot of a code can
never be taken twice.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DiscountKind(models.TextChoices):
    PERCENT = "percent", _("Percent")
    FIXED = "fixed", _("Rupiah off")


class Campaign(models.Model):
    name = models.CharField(_("campaign name"), max_length=100, unique=True)
    description = models.TextField(_("notes"), blank=True)
    discount_kind = models.CharField(_("discount kind"), max_length=8, choices=DiscountKind.choices)
    # Percent (1–100) or whole rupiah, by discount_kind.
    discount_value = models.PositiveIntegerField(_("discount value"))
    max_discount_idr = models.PositiveIntegerField(
        _("discount cap (Rp)"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    # Package codes from the runtime config; empty: every package.
    valid_packages = models.JSONField(_("valid for packages"), default=list, blank=True)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    max_redemptions_per_client = models.PositiveIntegerField(_("max. uses per client"), default=1)
    is_first_session_only = models.BooleanField(_("first paid session only"), default=False)
    applies_to_extensions = models.BooleanField(_("applies to extensions"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("promo campaign")
        verbose_name_plural = _("promo campaigns")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(discount_value__gt=0), name="campaign_discount_positive"
            ),
            models.CheckConstraint(
                condition=~models.Q(discount_kind="percent") | models.Q(discount_value__lte=100),
                name="campaign_percent_at_most_100",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="campaign_window"
            ),
            models.CheckConstraint(
                condition=models.Q(max_redemptions_per_client__gte=1), name="campaign_per_client_positive"
            ),
        ]

    def __str__(self):
        return self.name


class Voucher(models.Model):
    """One code. A batch of unique codes is many vouchers of one campaign (usually one use each)."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.PROTECT, related_name="vouchers"
    )
    # Stored upper-case; looked up upper-case (codes are typed by people).
    code = models.CharField(_("code"), max_length=32, unique=True)
    max_redemptions = models.PositiveIntegerField(
        _("max. uses"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    redemptions_taken = models.PositiveIntegerField(_("taken (reserved + paid)"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_redemptions__isnull=True)
                | models.Q(redemptions_taken__lte=models.F("max_redemptions")),
                name="voucher_never_over_redeemed",
            ),
        ]

    def __str__(self):
        return self.code


class RedemptionStatus(models.TextChoices):
    RESERVED = "reserved", _("Reserved (waiting for payment)")
    CONSUMED = "consumed", _("Used")
    RELEASED = "released", _("Released")


class Redemption(models.Model):
    """One use of a voucher on one payment (a session or an extension)."""

    voucher = models.ForeignKey(
        Voucher, verbose_name=_("voucher"), on_delete=models.PROTECT, related_name="redemptions"
    )
    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.PROTECT, related_name="redemptions"
    )
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("client"), on_delete=models.PROTECT, related_name="+"
    )
    session = models.ForeignKey(
        "sessions_app.ChatSession", verbose_name=_("session"), on_delete=models.PROTECT, related_name="+"
    )
    payment = models.OneToOneField(
        "payments.Payment", verbose_name=_("payment"), on_delete=models.PROTECT, related_name="redemption"
    )
    list_price_idr = models.PositiveIntegerField(_("list price (Rp)"))
    discount_idr = models.PositiveIntegerField(_("discount (Rp)"))
    amount_idr = models.PositiveIntegerField(_("amount paid (Rp)"))
    status = models.CharField(
        _("status"), max_length=10, choices=RedemptionStatus.choices, default=RedemptionStatus.RESERVED
    )
    reserved_at = models.DateTimeField(_("reserved at"))
    consumed_at = models.DateTimeField(_("consumed at"), null=True, blank=True)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    release_reason = models.CharField(_("release reason"), max_length=40, blank=True)

    class Meta:
        verbose_name = _("voucher use")
        verbose_name_plural = _("voucher uses")
        indexes = [
            models.Index(fields=["campaign", "status"], name="redemption_campaign_idx"),
            models.Index(fields=["client", "campaign"], name="redemption_client_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_idr=models.F("list_price_idr") - models.F("discount_idr")),
                name="redemption_amount_adds_up",
            ),
        ]

    def __str__(self):
        return f"{self.voucher_id} → {self.session_id} ({self.get_status_display()})"


class PhoneMark(models.Model):
    """A keyed hash (HMAC-SHA256 with PHONE_HASH_SECRET) of the phone of an erased client who had
    a session: nothing else about them. Keeps "first session" promos from being farmed by
    deleting and re-creating an account (docs/privacy.md)."""

    phone_hash = models.CharField(_("phone hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("erased phone mark")
        verbose_name_plural = _("erased phone marks")


class VoucherLookup(models.Model):
    """One voucher code looked up by a client (preview or session/extension with a code), for the
    per-client limits that keep codes from being enumerated. Purged after a day."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    is_known = models.BooleanField(_("known code"))
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("voucher code lookup")
        verbose_name_plural = _("voucher code lookups")
        indexes = [models.Index(fields=["user", "-created_at"], name="voucher_lookup_user_idx")]
