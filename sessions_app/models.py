"""Chat sessions, their messages, offers, ratings, reports and the mitra earnings ledger.

The state machine (which status may follow which) lives in `sessions_app/states.py`; only the
services in `sessions_app/lifecycle.py`, `matching.py` and `timers.py` change a session's status.
"""

import uuid

from django.conf import settings
from django.db import models

_EMPTY_JSON_LIST = models.Value([], output_field=models.JSONField())


class Status(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", "Menunggu pembayaran"
    MATCHING = "matching", "Mencari Bestie"
    OFFERED = "offered", "Ditawarkan ke Bestie"
    ACTIVE = "active", "Berlangsung"
    ENDED = "ended", "Selesai"
    CANCELLED = "cancelled", "Dibatalkan"
    UNMATCHED = "unmatched", "Tidak mendapat Bestie"


OPEN_STATUSES = (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED, Status.ACTIVE)
# Sessions that occupy a slot of their mitra's capacity.
OCCUPYING_STATUSES = (Status.OFFERED, Status.ACTIVE)


class EndReason(models.TextChoices):
    EXPIRED = "expired", "Waktu habis"
    CLIENT_ENDED = "client_ended", "Diakhiri klien"
    MITRA_ENDED = "mitra_ended", "Diakhiri mitra"
    MITRA_LOST = "mitra_lost", "Mitra terputus"
    STAFF_ENDED = "staff_ended", "Diakhiri staf"
    PAYMENT_EXPIRED = "payment_expired", "Pembayaran kedaluwarsa"
    CLIENT_CANCELLED = "client_cancelled", "Dibatalkan klien"
    NO_MITRA = "no_mitra", "Tidak ada Bestie tersedia"
    ACCOUNT_DELETED = "account_deleted", "Akun dihapus"


class ChatSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="chat_sessions"
    )
    mitra = models.ForeignKey(
        "mitras.Mitra", null=True, blank=True, on_delete=models.PROTECT, related_name="chat_sessions"
    )
    requested_mitra = models.ForeignKey(
        "mitras.Mitra", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # With a requested mitra: may anyone else take the session when that mitra is not free?
    allow_any_mitra = models.BooleanField(default=True)
    # The client's wishes for their Bestie (sessions_app/preferences.py), each optional, and the
    # kinds the dispatcher has let go so far, in the order it let them go.
    # (db_default: the previous release's INSERTs keep working during a rolling deploy.)
    preferred_topics = models.JSONField(default=list, db_default=_EMPTY_JSON_LIST, blank=True)
    preferred_gender = models.CharField(max_length=12, blank=True, db_default="")
    preferred_language = models.CharField(max_length=8, blank=True, db_default="")
    relaxed_preferences = models.JSONField(default=list, db_default=_EMPTY_JSON_LIST, blank=True)
    package_code = models.CharField(max_length=32)
    duration_seconds = models.PositiveIntegerField()
    price_idr = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # Queue order: when the session (re-)entered matching; first in, first out by paid_at.
    matching_started_at = models.DateTimeField(null=True, blank=True)
    offered_at = models.DateTimeField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    ending_soon_sent_at = models.DateTimeField(null=True, blank=True)
    # Set when the mitra's presence lapsed during the active session; cleared when back.
    mitra_lost_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Paid extensions: added to ends_at and to the price the mitra's share is computed from.
    extended_seconds = models.PositiveIntegerField(default=0)
    extensions_total_idr = models.PositiveIntegerField(default=0)
    # Vouchers: what was taken off the list prices above (session and extensions together).
    discount_idr = models.PositiveIntegerField(default=0, db_default=0)
    # Ended in a way that may deserve a refund (mitra lost): waits in the staff refund queue.
    needs_refund_review = models.BooleanField(default=False)
    is_flagged = models.BooleanField("ditandai krisis", default=False)
    flagged_at = models.DateTimeField(null=True, blank=True)
    # Warm handoff (sessions_app/handoff.py). Set with the message that signalled crisis, in its
    # statement; cleared when a staff member acknowledges (audited, with a note).
    needs_staff_attention = models.BooleanField("perlu perhatian staf", default=False, db_default=False)
    # Set with such a message too; cleared once the hotline, the free minutes and the live
    # events went out (right after the ack, or by the scheduler if the process died first).
    crisis_followup_pending = models.BooleanField(default=False, db_default=False)
    # The free minutes granted on the first crisis flag (part of extended_seconds; no price).
    crisis_extension_seconds = models.PositiveIntegerField(default=0, db_default=0)
    # The last message seq handed out; the next message gets last_seq + 1 (under the row lock).
    last_seq = models.PositiveIntegerField(default=0)
    # Read receipts: the highest seq each side has read (realtime `read` frames).
    client_read_seq = models.PositiveIntegerField(default=0)
    mitra_read_seq = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sesi chat"
        verbose_name_plural = "sesi chat"
        permissions = [
            ("view_transcript", "Boleh membaca transkrip chat (setiap akses diaudit)"),
            ("force_end_session", "Boleh mengakhiri sesi secara paksa"),
            ("handle_crisis", "Boleh menanggapi sesi krisis dan mengirim pesan Tim HaloBestie (diaudit)"),
        ]
        indexes = [
            models.Index(fields=["status", "matching_started_at"], name="session_queue_idx"),
            models.Index(fields=["status", "offer_expires_at"], name="session_offer_due_idx"),
            models.Index(fields=["status", "ends_at"], name="session_end_due_idx"),
            models.Index(fields=["mitra", "status"], name="session_mitra_status_idx"),
            models.Index(fields=["client", "-created_at"], name="session_client_idx"),
            # The wait estimate's recent chat lengths (sessions_app/wait_estimate.py).
            models.Index(
                fields=["-ended_at"],
                name="session_recent_chats_idx",
                condition=models.Q(status="ended", accepted_at__isnull=False),
            ),
            models.Index(
                fields=["flagged_at"],
                name="session_attention_idx",
                condition=models.Q(needs_staff_attention=True),
            ),
        ]
        constraints = [
            # A client has at most one open session, whatever races happen.
            models.UniqueConstraint(
                fields=["client"],
                condition=models.Q(status__in=["pending_payment", "matching", "offered", "active"]),
                name="session_one_open_per_client",
            ),
            models.CheckConstraint(condition=models.Q(price_idr__gte=0), name="session_price_non_negative"),
        ]

    def __str__(self):
        return f"Sesi {str(self.id)[:8]} ({self.get_status_display()})"


class OfferOutcome(models.TextChoices):
    PENDING = "pending", "Menunggu jawaban"
    ACCEPTED = "accepted", "Diterima"
    DECLINED = "declined", "Ditolak"
    EXPIRED = "expired", "Kedaluwarsa"
    WITHDRAWN = "withdrawn", "Ditarik"


class SessionOffer(models.Model):
    """One offer of a session to one mitra. A session is not offered again to a mitra who
    declined it or let it expire."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="offers")
    mitra = models.ForeignKey("mitras.Mitra", on_delete=models.PROTECT, related_name="offers")
    offered_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=OfferOutcome.choices, default=OfferOutcome.PENDING)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "tawaran sesi"
        verbose_name_plural = "tawaran sesi"
        indexes = [models.Index(fields=["session", "mitra"], name="offer_session_mitra_idx")]


class MessageKind(models.TextChoices):
    TEXT = "text", "Teks"
    SYSTEM = "system", "Sistem"


class Message(models.Model):
    """A chat message. `seq` is 1, 2, 3 … per session with no gaps (allocated from
    ChatSession.last_seq under the session's row lock). Bodies never go to logs."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=MessageKind.choices, default=MessageKind.TEXT)
    body = models.TextField()
    # The sender's idempotency key: a resend with the same id gets the same ack, no duplicate.
    client_msg_id = models.CharField(max_length=64, blank=True)
    is_masked = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    body_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "pesan"
        verbose_name_plural = "pesan"
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="message_session_seq_unique"),
            models.UniqueConstraint(
                fields=["session", "sender", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="message_client_msg_id_unique",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="message_created_idx")]


class SessionEvent(models.Model):
    """The session's timeline (state changes, payments, staff actions) for the control center."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "peristiwa sesi"
        verbose_name_plural = "peristiwa sesi"
        ordering = ["created_at", "id"]


class Rating(models.Model):
    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="rating")
    mitra = models.ForeignKey("mitras.Mitra", on_delete=models.PROTECT, related_name="ratings")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "rating"
        verbose_name_plural = "rating"
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_1_to_5")
        ]


class ReportStatus(models.TextChoices):
    OPEN = "open", "Terbuka"
    RESOLVED = "resolved", "Selesai"


class Report(models.Model):
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=40)
    detail = models.TextField(blank=True, max_length=2000)
    status = models.CharField(max_length=10, choices=ReportStatus.choices, default=ReportStatus.OPEN)
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "laporan"
        verbose_name_plural = "laporan"
        constraints = [models.UniqueConstraint(fields=["session", "reporter"], name="report_once_per_side")]


class PriceBasis(models.TextChoices):
    LIST_PRICE = "list_price", "Harga paket (sebelum diskon)"
    PAID_PRICE = "paid_price", "Harga dibayar (setelah diskon)"


class EntryKind(models.TextChoices):
    EARNING = "earning", "Pendapatan sesi"
    REVERSAL = "reversal", "Pembalikan (refund setelah sesi)"
    CORRECTION = "correction", "Koreksi (refund gagal)"


class EarningsEntry(models.Model):
    """The mitra earnings ledger, append-only, whole rupiah (rules: sessions_app/settlement.py).

    A session gets one `earning` row when it ends (the Bestie's share of what the client keeps
    paying for, the platform's part beside it); money that goes back to the client later books a
    `reversal` (negative), a refund that failed books a `correction` back. So for every settled
    session SUM(amount_idr + platform_idr) = paid − refunded, and a mitra's balance for a payout
    period is SUM(amount_idr) of its rows in that period. Rows are never updated or deleted.

    `price_basis` says what the Bestie's share was taken of when a voucher discounted the session
    (runtime config `mitra_share_basis`): the list price (promotions are the platform's cost, so
    the platform's part may be negative) or what the client paid; `basis_amount_idr` is that
    amount for the row's money (settlement.share_basis)."""

    mitra = models.ForeignKey("mitras.Mitra", on_delete=models.PROTECT, related_name="earnings")
    session = models.ForeignKey(ChatSession, on_delete=models.PROTECT, related_name="earnings_entries")
    kind = models.CharField(max_length=12, choices=EntryKind.choices, default=EntryKind.EARNING)
    # The Bestie's part (signed: reversals are negative) and the platform's part of the same money.
    amount_idr = models.IntegerField()
    platform_idr = models.IntegerField(default=0)
    share_percent = models.PositiveSmallIntegerField()
    # At settlement (earning rows): the minutes paid for, the minutes served, the rule applied.
    paid_minutes = models.PositiveIntegerField(default=0)
    served_minutes = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=60, blank=True)
    # The payout period (first day of an Asia/Jakarta month) the row counts in: the month it was
    # booked, or the first later month not paid out yet (a paid period is locked).
    period = models.DateField()
    # What the share was taken of (list price or paid price, see settlement.share_basis), and that
    # amount for this row's money (a reversal's basis is negative).
    price_basis = models.CharField(
        max_length=10,
        choices=PriceBasis.choices,
        default=PriceBasis.LIST_PRICE,
        db_default=PriceBasis.LIST_PRICE,
    )
    basis_amount_idr = models.IntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pendapatan mitra"
        verbose_name_plural = "pendapatan mitra"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["mitra", "created_at"], name="earnings_mitra_created_idx"),
            models.Index(fields=["period", "mitra"], name="earnings_period_mitra_idx"),
            models.Index(fields=["session", "kind"], name="earnings_session_idx"),
        ]
        constraints = [
            # One settlement per session, however often the end is retried.
            models.UniqueConstraint(
                fields=["session"],
                condition=models.Q(kind="earning"),
                name="earnings_one_earning_per_session",
            ),
            # The platform's part of an earning may be negative: a voucher with the list-price
            # basis (settlement.share_basis) is the platform's cost.
            models.CheckConstraint(
                condition=~models.Q(kind="earning") | models.Q(amount_idr__gte=0),
                name="earnings_earning_mitra_not_negative",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} Rp{self.amount_idr} ({self.period:%Y-%m})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("EarningsEntry rows are append-only.")
        super().save(*args, **kwargs)

    @property
    def gross_idr(self):
        return self.amount_idr + self.platform_idr


class PayoutBatch(models.Model):
    """Finance paid the Besties for one period (an Asia/Jakarta month): the period is locked from
    then on (later entries land in the next period). `lines` keeps what was paid, per mitra."""

    period = models.DateField(unique=True)
    entries_idr = models.BigIntegerField()
    reversals_idr = models.BigIntegerField()
    total_idr = models.BigIntegerField()
    mitra_count = models.PositiveIntegerField()
    lines = models.JSONField(default=list)
    reference = models.CharField("referensi transfer", max_length=100)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    paid_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pembayaran mitra (payout)"
        verbose_name_plural = "pembayaran mitra (payout)"
        ordering = ["-period"]

    def __str__(self):
        return f"Payout {self.period:%Y-%m} Rp{self.total_idr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("PayoutBatch rows are append-only.")
        super().save(*args, **kwargs)


class RealtimeTicket(models.Model):
    """A one-use ticket (≤ 60 s) for opening the WebSocket where the app cannot set headers.
    Only a SHA-256 of the ticket is stored; it is consumed atomically (sessions_app/tickets.py)."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "tiket realtime"
        verbose_name_plural = "tiket realtime"
        indexes = [models.Index(fields=["expires_at"], name="realtime_ticket_expires_idx")]


class Block(models.Model):
    """One side blocked the other after a session: the two are never matched again
    (sessions_app/blocking.py). One row per client–mitra pair, whoever blocked first."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mitra = models.ForeignKey("mitras.Mitra", on_delete=models.CASCADE, related_name="+")
    blocked_by = models.CharField(max_length=10, choices=[("client", "Klien"), ("mitra", "Mitra")])
    session = models.ForeignKey(
        ChatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "blokir"
        verbose_name_plural = "blokir"
        constraints = [models.UniqueConstraint(fields=["client", "mitra"], name="block_pair_unique")]
