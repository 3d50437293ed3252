"""Chat sessions, their messages, offers, ratings, reports and the mitra earnings ledger.

The state machine (which status may follow which) lives in `sessions_app/states.py`; only the
services in `sessions_app/lifecycle.py`, `matching.py` and `timers.py` change a session's status.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

_EMPTY_JSON_LIST = models.Value([], output_field=models.JSONField())


class Status(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("Waiting for payment")
    MATCHING = "matching", _("Looking for a Bestie")
    OFFERED = "offered", _("Offered to a Bestie")
    ACTIVE = "active", _("In progress")
    ENDED = "ended", _("Ended")
    CANCELLED = "cancelled", _("Cancelled")
    UNMATCHED = "unmatched", _("No Bestie found")
    # A booked session (sessions_app/bookings.py), paid, waiting for its start time.
    SCHEDULED = "scheduled", _("Scheduled")


OPEN_STATUSES = (Status.PENDING_PAYMENT, Status.MATCHING, Status.OFFERED, Status.ACTIVE)
# Sessions that occupy a slot of their mitra's capacity.
OCCUPYING_STATUSES = (Status.OFFERED, Status.ACTIVE)


class EndReason(models.TextChoices):
    EXPIRED = "expired", _("Time is up")
    CLIENT_ENDED = "client_ended", _("Ended by the client")
    MITRA_ENDED = "mitra_ended", _("Ended by the Bestie")
    MITRA_LOST = "mitra_lost", _("Bestie disconnected")
    STAFF_ENDED = "staff_ended", _("Ended by staff")
    PAYMENT_EXPIRED = "payment_expired", _("Payment expired")
    CLIENT_CANCELLED = "client_cancelled", _("Cancelled by the client")
    NO_MITRA = "no_mitra", _("No Bestie available")
    ACCOUNT_DELETED = "account_deleted", _("Account deleted")
    MITRA_CANCELLED = "mitra_cancelled", _("Cancelled by the Bestie")
    STAFF_CANCELLED = "staff_cancelled", _("Cancelled by staff")
    HOLD_EXPIRED = "hold_expired", _("Booking hold expired")


class ChatSession(models.Model):
    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("client"),
        on_delete=models.PROTECT,
        related_name="chat_sessions",
    )
    mitra = models.ForeignKey(
        "mitras.Mitra",
        verbose_name=_("Bestie"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="chat_sessions",
    )
    requested_mitra = models.ForeignKey(
        "mitras.Mitra",
        verbose_name=_("requested Bestie"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # With a requested mitra: may anyone else take the session when that mitra is not free?
    allow_any_mitra = models.BooleanField(_("allow any Bestie"), default=True)
    # A booked session (its Booking row: sessions_app/bookings.py): not counted as the client's one
    # open on-demand session, so a client can book during a chat and chat while a booking waits.
    is_booked = models.BooleanField(_("booked session"), default=False, db_default=False)
    # The client's wishes for their Bestie (sessions_app/preferences.py), each optional, and the
    # kinds the dispatcher has let go so far, in the order it let them go.
    # (db_default: the previous release's INSERTs keep working during a rolling deploy.)
    preferred_topics = models.JSONField(
        _("preferred topics"), default=list, db_default=_EMPTY_JSON_LIST, blank=True
    )
    preferred_gender = models.CharField(_("preferred gender"), max_length=12, blank=True, db_default="")
    preferred_language = models.CharField(_("preferred language"), max_length=8, blank=True, db_default="")
    relaxed_preferences = models.JSONField(
        _("relaxed preferences"), default=list, db_default=_EMPTY_JSON_LIST, blank=True
    )
    package_code = models.CharField(_("package"), max_length=32)
    duration_seconds = models.PositiveIntegerField(_("duration (seconds)"))
    price_idr = models.PositiveIntegerField(_("price (Rp)"))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT
    )
    end_reason = models.CharField(_("end reason"), max_length=20, choices=EndReason.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("ended by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    # Queue order: when the session (re-)entered matching; first in, first out by paid_at.
    matching_started_at = models.DateTimeField(_("matching started at"), null=True, blank=True)
    offered_at = models.DateTimeField(_("offered at"), null=True, blank=True)
    offer_expires_at = models.DateTimeField(_("offer expires at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    ending_soon_sent_at = models.DateTimeField(_("ending soon sent at"), null=True, blank=True)
    # Set when the mitra's presence lapsed during the active session; cleared when back.
    mitra_lost_at = models.DateTimeField(_("Bestie lost at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    # Paid extensions: added to ends_at and to the price the mitra's share is computed from.
    extended_seconds = models.PositiveIntegerField(_("extended by (seconds)"), default=0)
    extensions_total_idr = models.PositiveIntegerField(_("extensions total (Rp)"), default=0)
    # Vouchers: what was taken off the list prices above (session and extensions together).
    discount_idr = models.PositiveIntegerField(_("discount (Rp)"), default=0, db_default=0)
    # Ended in a way that may deserve a refund (mitra lost): waits in the staff refund queue.
    needs_refund_review = models.BooleanField(_("needs refund review"), default=False)
    is_flagged = models.BooleanField(_("flagged for crisis"), default=False)
    flagged_at = models.DateTimeField(_("flagged at"), null=True, blank=True)
    # Warm handoff (sessions_app/handoff.py). Set with the message that signalled crisis, in its
    # statement; cleared when a staff member acknowledges (audited, with a note).
    needs_staff_attention = models.BooleanField(_("needs staff attention"), default=False, db_default=False)
    # Set with such a message too; cleared once the hotline, the free minutes and the live
    # events went out (right after the ack, or by the scheduler if the process died first).
    crisis_followup_pending = models.BooleanField(
        _("crisis follow-up pending"), default=False, db_default=False
    )
    # The free minutes granted on the first crisis flag (part of extended_seconds; no price).
    crisis_extension_seconds = models.PositiveIntegerField(
        _("free crisis minutes (seconds)"), default=0, db_default=0
    )
    # The last message seq handed out; the next message gets last_seq + 1 (under the row lock).
    last_seq = models.PositiveIntegerField(_("last sequence number"), default=0)
    # Read receipts: the highest seq each side has read (realtime `read` frames).
    client_read_seq = models.PositiveIntegerField(_("read by the client up to"), default=0)
    mitra_read_seq = models.PositiveIntegerField(_("read by the Bestie up to"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("chat session")
        verbose_name_plural = _("chat sessions")
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
                condition=models.Q(
                    status__in=["pending_payment", "matching", "offered", "active"], is_booked=False
                ),
                name="session_one_open_per_client",
            ),
            models.CheckConstraint(condition=models.Q(price_idr__gte=0), name="session_price_non_negative"),
        ]

    def __str__(self):
        return f"Sesi {str(self.id)[:8]} ({self.get_status_display()})"


class OfferOutcome(models.TextChoices):
    PENDING = "pending", _("Waiting for an answer")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    EXPIRED = "expired", _("Expired")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class SessionOffer(models.Model):
    """One offer of a session to one mitra. A session is not offered again to a mitra who
    declined it or let it expire."""

    session = models.ForeignKey(
        ChatSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="offers"
    )
    mitra = models.ForeignKey(
        "mitras.Mitra", verbose_name=_("Bestie"), on_delete=models.PROTECT, related_name="offers"
    )
    offered_at = models.DateTimeField(_("offered at"))
    expires_at = models.DateTimeField(_("expires at"))
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=OfferOutcome.choices, default=OfferOutcome.PENDING
    )
    responded_at = models.DateTimeField(_("responded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("session offer")
        verbose_name_plural = _("session offers")
        indexes = [models.Index(fields=["session", "mitra"], name="offer_session_mitra_idx")]


class MessageKind(models.TextChoices):
    TEXT = "text", _("Text")
    SYSTEM = "system", _("System")


class Message(models.Model):
    """A chat message. `seq` is 1, 2, 3 … per session with no gaps (allocated from
    ChatSession.last_seq under the session's row lock). Bodies never go to logs."""

    session = models.ForeignKey(
        ChatSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField(_("sequence number"))
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sender"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    kind = models.CharField(_("kind"), max_length=8, choices=MessageKind.choices, default=MessageKind.TEXT)
    body = models.TextField(_("message"))
    # The sender's idempotency key: a resend with the same id gets the same ack, no duplicate.
    client_msg_id = models.CharField(_("client message ID"), max_length=64, blank=True)
    is_masked = models.BooleanField(_("masked"), default=False)
    created_at = models.DateTimeField(_("created at"))
    body_purged_at = models.DateTimeField(_("body purged at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
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

    session = models.ForeignKey(
        ChatSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(_("kind"), max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("session event")
        verbose_name_plural = _("session events")
        ordering = ["created_at", "id"]


class Rating(models.Model):
    session = models.OneToOneField(
        ChatSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="rating"
    )
    mitra = models.ForeignKey(
        "mitras.Mitra", verbose_name=_("Bestie"), on_delete=models.PROTECT, related_name="ratings"
    )
    score = models.PositiveSmallIntegerField(_("score (1-5)"))
    comment = models.TextField(_("comment"), blank=True, max_length=1000)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("rating")
        verbose_name_plural = _("ratings")
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_1_to_5")
        ]


class ReportStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class Report(models.Model):
    session = models.ForeignKey(
        ChatSession, verbose_name=_("session"), on_delete=models.CASCADE, related_name="reports"
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("reporter"), on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=40)
    detail = models.TextField(_("detail"), blank=True, max_length=2000)
    status = models.CharField(
        _("status"), max_length=10, choices=ReportStatus.choices, default=ReportStatus.OPEN
    )
    resolution_note = models.TextField(_("resolution note"), blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        constraints = [models.UniqueConstraint(fields=["session", "reporter"], name="report_once_per_side")]


class PriceBasis(models.TextChoices):
    LIST_PRICE = "list_price", _("List price (before discount)")
    PAID_PRICE = "paid_price", _("Paid price (after discount)")


class EntryKind(models.TextChoices):
    EARNING = "earning", _("Session earning")
    REVERSAL = "reversal", _("Reversal (refund after the session)")
    CORRECTION = "correction", _("Correction (failed refund)")


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

    mitra = models.ForeignKey(
        "mitras.Mitra", verbose_name=_("Bestie"), on_delete=models.PROTECT, related_name="earnings"
    )
    session = models.ForeignKey(
        ChatSession, verbose_name=_("session"), on_delete=models.PROTECT, related_name="earnings_entries"
    )
    kind = models.CharField(_("kind"), max_length=12, choices=EntryKind.choices, default=EntryKind.EARNING)
    # The Bestie's part (signed: reversals are negative) and the platform's part of the same money.
    amount_idr = models.IntegerField(_("Bestie part (Rp)"))
    platform_idr = models.IntegerField(_("platform part (Rp)"), default=0)
    share_percent = models.PositiveSmallIntegerField(_("Bestie share (%)"))
    # At settlement (earning rows): the minutes paid for, the minutes served, the rule applied.
    paid_minutes = models.PositiveIntegerField(_("minutes paid"), default=0)
    served_minutes = models.PositiveIntegerField(_("minutes served"), default=0)
    reason = models.CharField(_("rule applied"), max_length=60, blank=True)
    # The payout period (first day of an Asia/Jakarta month) the row counts in: the month it was
    # booked, or the first later month not paid out yet (a paid period is locked).
    period = models.DateField(_("payout period"))
    # What the share was taken of (list price or paid price, see settlement.share_basis), and that
    # amount for this row's money (a reversal's basis is negative).
    price_basis = models.CharField(
        _("share basis"),
        max_length=10,
        choices=PriceBasis.choices,
        default=PriceBasis.LIST_PRICE,
        db_default=PriceBasis.LIST_PRICE,
    )
    basis_amount_idr = models.IntegerField(_("share basis amount (Rp)"), default=0, db_default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("Bestie earning")
        verbose_name_plural = _("Bestie earnings")
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

    period = models.DateField(_("payout period"), unique=True)
    entries_idr = models.BigIntegerField(_("earnings (Rp)"))
    reversals_idr = models.BigIntegerField(_("reversals (Rp)"))
    total_idr = models.BigIntegerField(_("total (Rp)"))
    mitra_count = models.PositiveIntegerField(_("number of Besties"))
    lines = models.JSONField(_("lines"), default=list)
    reference = models.CharField(_("transfer reference"), max_length=100)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("paid by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    paid_at = models.DateTimeField(_("paid at"), auto_now_add=True)

    class Meta:
        verbose_name = _("Bestie payout")
        verbose_name_plural = _("Bestie payouts")
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

    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("realtime ticket")
        verbose_name_plural = _("realtime tickets")
        indexes = [models.Index(fields=["expires_at"], name="realtime_ticket_expires_idx")]


class Block(models.Model):
    """One side blocked the other after a session: the two are never matched again
    (sessions_app/blocking.py). One row per client–mitra pair, whoever blocked first."""

    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("client"), on_delete=models.CASCADE, related_name="+"
    )
    mitra = models.ForeignKey(
        "mitras.Mitra", verbose_name=_("Bestie"), on_delete=models.CASCADE, related_name="+"
    )
    blocked_by = models.CharField(
        _("blocked by"), max_length=10, choices=[("client", _("Client")), ("mitra", _("Bestie (mitra)"))]
    )
    session = models.ForeignKey(
        ChatSession,
        verbose_name=_("after session"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("block")
        verbose_name_plural = _("blocks")
        constraints = [models.UniqueConstraint(fields=["client", "mitra"], name="block_pair_unique")]


class Booking(models.Model):
    """A client's reservation of one Bestie for one package length at a set time
    (sessions_app/bookings.py). Its money and life run through its own `session` (is_booked):
    pending_payment = held (until `hold_expires_at`), scheduled = confirmed, then at `starts_at` an
    offer to the booked Bestie like any session. The session's status is the one truth; the
    booking adds the time, the hold and what was sent."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    session = models.OneToOneField(
        ChatSession, on_delete=models.PROTECT, related_name="booking", verbose_name=_("session")
    )
    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings", verbose_name=_("client")
    )
    mitra = models.ForeignKey(
        "mitras.Mitra", on_delete=models.PROTECT, related_name="bookings", verbose_name=_("Bestie")
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    # An unpaid booking holds its time until then; after it the time is free again.
    hold_expires_at = models.DateTimeField(_("hold expires at"))
    # Reminder lead times (seconds before the start) already pushed, so each goes out once.
    reminders_sent = models.JSONField(_("reminders sent"), default=list, blank=True)
    # Set when the booked Bestie let the start pass (grace period) or declined: the client chooses.
    mitra_absent_at = models.DateTimeField(_("Bestie absent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        indexes = [
            models.Index(fields=["mitra", "starts_at"], name="booking_mitra_start_idx"),
            models.Index(fields=["starts_at"], name="booking_start_idx"),
            models.Index(fields=["client", "-starts_at"], name="booking_client_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="booking_ends_after_start"
            ),
        ]

    def __str__(self):
        return f"Pemesanan {str(self.id)[:8]}"
