"""Payments (one Xendit invoice each), the raw callbacks we received, and refunds.

Only `payments/services.py` changes these rows. Money is integer rupiah; times are UTC.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class PaymentKind(models.TextChoices):
    SESSION = "session", _("Session")
    EXTENSION = "extension", _("Extension")


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for payment")
    PAID = "paid", _("Paid")
    EXPIRED = "expired", _("Expired")
    FAILED = "failed", _("Failed")


class Payment(models.Model):
    """One invoice for a session or an extension of it. `external_id` is ours and unique; the
    gateway's invoice id is `invoice_id` ("local-…" for the local checkout)."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        "sessions_app.ChatSession",
        verbose_name=_("session"),
        on_delete=models.PROTECT,
        related_name="payments",
    )
    kind = models.CharField(_("paid for"), max_length=10, choices=PaymentKind.choices)
    package_code = models.CharField(_("package"), max_length=32)
    # What the client pays: the package's list price less `discount_idr` (a voucher). Zero for a
    # wholly free session: no invoice, the record is there for the books.
    amount_idr = models.PositiveIntegerField(_("amount (Rp)"))
    discount_idr = models.PositiveIntegerField(_("discount (Rp)"), default=0, db_default=0)
    external_id = models.CharField(_("external ID"), max_length=64, unique=True)
    invoice_id = models.CharField(_("invoice ID"), max_length=64, db_index=True)
    invoice_url = models.CharField(_("invoice URL"), max_length=500)
    status = models.CharField(
        _("status"), max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    # What the gateway says was paid (PAID/SETTLED callbacks), kept for the staff's reconciliation.
    paid_amount_idr = models.PositiveIntegerField(_("amount paid (Rp)"), null=True, blank=True)
    payment_method = models.CharField(_("payment method"), max_length=40, blank=True)
    payment_channel = models.CharField(_("payment channel"), max_length=40, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    # Something about this payment needs a human (amount mismatch, paid after the session closed).
    flagged_for_staff = models.BooleanField(_("flagged for staff"), default=False)
    flag_reason = models.CharField(_("flag reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        indexes = [
            models.Index(fields=["session", "-created_at"], name="payment_session_idx"),
            models.Index(fields=["status", "expires_at"], name="payment_status_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_idr__gt=0) | models.Q(amount_idr=0, discount_idr__gt=0),
                name="payment_amount_positive_unless_free",
            ),
        ]

    def __str__(self):
        return f"{self.external_id} ({self.get_status_display()})"

    @property
    def list_price_idr(self):
        return self.amount_idr + self.discount_idr


class CallbackKind(models.TextChoices):
    INVOICE = "invoice", _("Invoice")
    REFUND = "refund", _("Refund")


class PaymentCallback(models.Model):
    """Every authenticated callback as received (append-only), and what we made of it.

    The callback token is never stored. Callbacks with a wrong token are refused with 401 and not
    stored at all (anyone can send those; storing them would let strangers fill the table)."""

    kind = models.CharField(_("kind"), max_length=10, choices=CallbackKind.choices)
    payment = models.ForeignKey(
        Payment,
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="callbacks",
    )
    refund = models.ForeignKey(
        "payments.Refund",
        verbose_name=_("refund"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="callbacks",
    )
    # Copied from the body for searching: our external id / refund reference, the gateway's id.
    reference = models.CharField(_("reference"), max_length=100, blank=True, db_index=True)
    gateway_id = models.CharField(_("gateway ID"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=20, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.JSONField(_("body"), default=dict, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    outcome = models.CharField(_("outcome"), max_length=40)
    outcome_detail = models.CharField(_("outcome detail"), max_length=300, blank=True)
    # When the payer's fields were removed from `body` (retention or account erasure); what stays
    # is what the bookkeeping needs (payments/privacy.py, docs/privacy.md).
    payer_data_removed_at = models.DateTimeField(_("payer data removed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment callback")
        verbose_name_plural = _("payment callbacks")
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.kind} {self.reference} {self.status} → {self.outcome}"

    def save(self, *args, **kwargs):
        # Append-only: a stored callback is evidence, never rewritten.
        if self.pk is not None:
            raise ValueError("PaymentCallback rows are append-only.")
        super().save(*args, **kwargs)


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested (not sent to Xendit yet)")
    PENDING = "pending", _("Processing")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    MANUAL_SETTLED = "manual_settled", _("Settled by hand")


# Refunds in these states count against what is still refundable on their payment.
REFUND_COUNTING_STATUSES = (
    RefundStatus.REQUESTED,
    RefundStatus.PENDING,
    RefundStatus.SUCCEEDED,
    RefundStatus.MANUAL_SETTLED,
)


class Refund(models.Model):
    """Money back for (part of) one payment. With Xendit it is sent with `idempotency_key` (our id)
    and follows the refund callback; without, it waits `pending` for staff to settle by hand."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="refunds"
    )
    session = models.ForeignKey(
        "sessions_app.ChatSession",
        verbose_name=_("session"),
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    amount_idr = models.PositiveIntegerField(_("amount (Rp)"))
    reason = models.CharField(_("reason"), max_length=40)
    status = models.CharField(
        _("status"), max_length=16, choices=RefundStatus.choices, default=RefundStatus.REQUESTED
    )
    # Sent to the gateway only when the payment was really paid through it (see refund_create).
    is_gateway_refund = models.BooleanField(_("refund through the gateway"), default=False)
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    xendit_refund_id = models.CharField(_("Xendit refund ID"), max_length=100, blank=True, db_index=True)
    failure_code = models.CharField(_("failure code"), max_length=100, blank=True)
    # A failed refund tried again is a new refund (a new idempotency key); this points back.
    retry_of = models.ForeignKey(
        "self", verbose_name=_("retry of"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    send_attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    last_sent_at = models.DateTimeField(_("last sent at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("settled by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        indexes = [models.Index(fields=["status", "created_at"], name="refund_status_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_idr__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self):
        return f"Refund {str(self.id)[:8]} Rp{self.amount_idr} ({self.get_status_display()})"

    def save(self, *args, **kwargs):
        if not self.idempotency_key:
            self.idempotency_key = str(self.id)
        super().save(*args, **kwargs)
