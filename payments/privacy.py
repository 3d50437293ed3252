"""Payer data in the raw gateway callbacks we keep (PaymentCallback.body).

Xendit's callbacks carry the payer: `payer_email`, the virtual account or e-wallet number
(`payment_destination`, `account_number`, `mobile_number`), the customer object, item lists and
free-text descriptions. We keep callbacks as evidence, but the payer's fields only while a
dispute is plausible (runtime config `callback_payer_retention_days`, default 180 days), and not
a moment after the client erases their account. What stays is what bookkeeping and the tax law
need (docs/privacy.md): which invoice or refund, how much, when, which status, which method and
channel, and the gateway's ids. A callback is still never rewritten otherwise (append-only).
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from halobestie.runtime.selectors import get_config
from payments.models import Payment, PaymentCallback

# The fields of an invoice or refund callback (and of a refund callback's "data") that stay.
KEPT_KEYS = frozenset(
    {
        "id", "external_id", "user_id", "business_id", "event", "status", "merchant_name", "amount",
        "paid_amount", "currency", "payment_method", "payment_channel", "payment_method_type",
        "channel_code", "bank_code", "ewallet_type", "paid_at", "created", "updated", "is_high",
        "fees_paid_amount", "adjusted_received_amount", "payment_id", "invoice_id", "reference_id",
        "refund_fee_amount", "failure_code", "reason", "country", "data",
    }
)  # fmt: skip


def payer_fields_removed(body):
    """`body` with only KEPT_KEYS (recursively into "data")."""
    if not isinstance(body, dict):
        return {}
    kept = {}
    for key, value in body.items():
        if key not in KEPT_KEYS:
            continue
        kept[key] = payer_fields_removed(value) if key == "data" else value
        if key == "data" and not isinstance(value, dict):
            kept[key] = {}
    return kept


def callbacks_remove_payer_data(callbacks, *, now=None) -> int:
    """Remove the payer's fields from these callbacks (a queryset). Idempotent; returns how many
    callbacks changed now."""
    now = now or timezone.now()
    done = 0
    with transaction.atomic():
        rows = list(
            callbacks.select_for_update().filter(payer_data_removed_at__isnull=True).values_list("id", "body")
        )
        for callback_id, body in rows:
            # A queryset update: PaymentCallback.save() refuses rewrites, this is the one allowed.
            PaymentCallback.objects.filter(pk=callback_id).update(
                body=payer_fields_removed(body), payer_data_removed_at=now
            )
            done += 1
    return done


def callbacks_purge_payer_data(*, now=None, limit: int = 1000) -> int:
    """Scheduler job: callbacks older than `callback_payer_retention_days` lose the payer's fields."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=get_config().callback_payer_retention_days)
    ids = list(
        PaymentCallback.objects.filter(received_at__lt=cutoff, payer_data_removed_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if not ids:
        return 0
    return callbacks_remove_payer_data(PaymentCallback.objects.filter(pk__in=ids), now=now)


def client_payer_data_erase(user_id) -> None:
    """Hook (accounts.hooks.on_client_erasing), inside the erasure's transaction: the client's
    callbacks lose the payer's fields, and their invoices' links (the gateway's page shows the
    payer) are dropped. Amounts, dates and ids stay for the books."""
    payments = Payment.objects.filter(session__client_id=user_id)
    callbacks_remove_payer_data(PaymentCallback.objects.filter(payment__in=payments))
    callbacks_remove_payer_data(PaymentCallback.objects.filter(refund__payment__in=payments))
    payments.update(invoice_url="")
