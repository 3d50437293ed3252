"""Reads on sessions."""

from collections import namedtuple
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, F, Max, OuterRef, Prefetch, Q, Subquery, Sum, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from halobestie.errors import NotFound
from payments.models import REFUND_COUNTING_STATUSES, Payment, PaymentKind, PaymentStatus, Refund
from sessions_app.errors import NotParticipant, SessionNotFound
from sessions_app.models import (
    OCCUPYING_STATUSES,
    OPEN_STATUSES,
    ChatSession,
    EarningsEntry,
    EntryKind,
    Message,
    Status,
)
from sessions_app.stored_message import StoredMessage


def session_get_for_participant(*, session_id, user) -> ChatSession:
    """The session if `user` is its client or its mitra; NotFound otherwise (no existence leak)."""
    query = ChatSession.objects.select_related("client", "mitra", "rating")
    if user.role == "client":
        query = query.filter(client=user)
    elif user.role == "mitra":
        # Only the session's current mitra: one who declined, or whose offer lapsed, must not
        # read the chat the session later has with another Bestie.
        query = query.filter(mitra__user=user)
    else:
        raise NotFound()
    try:
        return query.get(pk=session_id)
    except (ChatSession.DoesNotExist, ValueError, TypeError):
        raise SessionNotFound()


def session_list_for_user(*, user, status=None):
    """The user's sessions, newest first, with what SessionOut shows joined in (the rating, the
    payments newest first, the queue place): a page costs the same queries for 1 row or 50."""
    ahead = (
        ChatSession.objects.filter(status=Status.MATCHING)
        .filter(
            Q(matching_started_at__lt=OuterRef("matching_started_at"))
            | Q(matching_started_at=OuterRef("matching_started_at"), created_at__lt=OuterRef("created_at"))
        )
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values("n")
    )
    query = (
        ChatSession.objects.select_related("client", "mitra", "rating")
        .prefetch_related(
            Prefetch("payments", queryset=Payment.objects.order_by("-created_at"), to_attr="payments_newest")
        )
        .annotate(queue_ahead=Subquery(ahead))
        .order_by("-created_at")
    )
    if user.role == "client":
        query = query.filter(client=user)
    else:
        query = query.filter(mitra__user=user)
    if status:
        query = query.filter(status__in=status)
    return query


def session_open_for_client(*, client):
    """The client's open on-demand session (booked sessions wait beside it: bookings.py)."""
    return ChatSession.objects.filter(client=client, status__in=OPEN_STATUSES, is_booked=False).first()


def queue_position(*, session) -> int | None:
    """1-based place in the waiting queue (first in, first out), or None when not waiting."""
    if session.status != Status.MATCHING or session.matching_started_at is None:
        return None
    if hasattr(session, "queue_ahead"):  # annotated by session_list_for_user
        return (session.queue_ahead or 0) + 1
    ahead = ChatSession.objects.filter(
        Q(matching_started_at__lt=session.matching_started_at)
        | Q(matching_started_at=session.matching_started_at, created_at__lt=session.created_at),
        status=Status.MATCHING,
    ).count()
    return ahead + 1


def mitra_session_loads(mitra_ids=None) -> dict:
    """{mitra_id: sessions occupying the mitra (offered + active)} from Postgres."""
    query = ChatSession.objects.filter(status__in=OCCUPYING_STATUSES, mitra__isnull=False)
    if mitra_ids is not None:
        query = query.filter(mitra_id__in=mitra_ids)
    return dict(query.values_list("mitra_id").annotate(n=Count("id")).values_list("mitra_id", "n"))


def earnings_totals(*, mitra) -> dict:
    """The mitra's earnings by period (Asia/Jakarta days, weeks from Monday, months), whole rupiah,
    each the sum of the ledger rows (reversals included), and how many sessions earned them."""
    entries = EarningsEntry.objects.filter(mitra=mitra)
    day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timezone.timedelta(days=day.weekday())
    month = day.replace(day=1)

    def total(since=None):
        query = entries.filter(created_at__gte=since) if since else entries
        return query.aggregate(total=Sum("amount_idr"))["total"] or 0

    return {
        "today_idr": total(day),
        "this_week_idr": total(week),
        "this_month_idr": total(month),
        "all_time_idr": total(),
        "sessions_count": entries.filter(kind=EntryKind.EARNING).count(),
    }


def payment_latest_for_session(*, session):
    if hasattr(session, "payments_newest"):  # prefetched by session_list_for_user
        return session.payments_newest[0] if session.payments_newest else None
    return Payment.objects.filter(session=session).order_by("-created_at").first()


def messages_after(*, session, after_seq=0, limit=100):
    return list(
        Message.objects.filter(session=session, seq__gt=after_seq).order_by("seq")[: max(1, min(limit, 500))]
    )


# Money -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionMoney:
    """A session's money from its payments, refunds and ledger rows (rules: settlement.py)."""

    paid_idr: int
    refunded_idr: int
    mitra_idr: int  # SUM of the session's ledger rows, the Bestie's part
    platform_idr: int  # the platform's part: its ledger rows, or all of it while unsettled
    is_settled: bool

    @property
    def client_net_idr(self):
        return self.paid_idr - self.refunded_idr

    @property
    def is_balanced(self):
        """paid − refunded = client net and Bestie + platform = client net, the Bestie's part and
        the client's net never negative. The platform's part may be negative: a voucher's discount
        with `mitra_share_basis=list_price` is the platform's cost (settlement.share_basis)."""
        return (
            self.mitra_idr + self.platform_idr == self.client_net_idr
            and min(self.mitra_idr, self.client_net_idr) >= 0
        )


def session_money(*, session) -> SessionMoney:
    """What the client paid (paid payments; a session marked paid without a paid payment on record
    counts its session payment, as refund_create does), what went back (refunds that count: asked,
    pending, succeeded, settled by hand), and the ledger's split of the rest."""
    payments = list(Payment.objects.filter(session_id=session.pk).values_list("kind", "status", "amount_idr"))
    paid = sum(amount for _, status, amount in payments if status == PaymentStatus.PAID)
    if session.paid_at is not None and not any(
        kind == PaymentKind.SESSION and status == PaymentStatus.PAID for kind, status, _ in payments
    ):
        paid += next(
            (amount for kind, _, amount in payments if kind == PaymentKind.SESSION), session.price_idr
        )
    refunded = (
        Refund.objects.filter(session_id=session.pk, status__in=REFUND_COUNTING_STATUSES).aggregate(
            total=Sum("amount_idr")
        )["total"]
        or 0
    )
    ledger = EarningsEntry.objects.filter(session_id=session.pk).aggregate(
        rows=Count("id"), mitra=Sum("amount_idr"), platform=Sum("platform_idr")
    )
    if ledger["rows"]:
        return SessionMoney(paid, refunded, ledger["mitra"], ledger["platform"], True)
    return SessionMoney(paid, refunded, 0, paid - refunded, False)


def mitra_statement(*, mitra):
    """The mitra's settled sessions, newest first, each with its ledger sums (one query)."""
    earning = Q(earnings_entries__kind=EntryKind.EARNING)
    return (
        ChatSession.objects.filter(earnings_entries__mitra=mitra)
        .annotate(
            earned_idr=Coalesce(Sum("earnings_entries__amount_idr", filter=earning), 0),
            reversals_idr=Coalesce(Sum("earnings_entries__amount_idr", filter=~earning), 0),
            total_idr=Sum("earnings_entries__amount_idr"),
            net_idr=Sum(F("earnings_entries__amount_idr") + F("earnings_entries__platform_idr")),
            share_percent=Max("earnings_entries__share_percent", filter=earning),
            paid_minutes=Max("earnings_entries__paid_minutes", filter=earning),
            served_minutes=Max("earnings_entries__served_minutes", filter=earning),
        )
        .order_by("-ended_at", "-id")
    )


# Participants, replay (the chat's reads) -----------------------------------------------------------


@dataclass(frozen=True)
class Participants:
    session_id: str
    status: str
    client_user_id: int
    mitra_user_id: int | None
    last_seq: int

    def other_than(self, user_id):
        return self.mitra_user_id if user_id == self.client_user_id else self.client_user_id

    def includes(self, user_id):
        return user_id in (self.client_user_id, self.mitra_user_id)


def session_participants(*, session_id, user_id) -> Participants:
    """The session's two sides, if `user_id` is one of them. Raises SessionNotFound or
    NotParticipant (a mitra who was only offered the session is not a participant)."""
    try:
        row = (
            ChatSession.objects.filter(pk=session_id)
            .values_list("status", "client_id", "mitra__user_id", "last_seq")
            .first()
        )
    except (ValueError, TypeError, ValidationError):  # not a UUID
        row = None
    if row is None:
        raise SessionNotFound()
    status, client_user_id, mitra_user_id, last_seq = row
    participants = Participants(str(session_id), status, client_user_id, mitra_user_id, last_seq)
    if not participants.includes(user_id):
        raise NotParticipant()
    return participants


def messages_replay(*, session_id, user_id, after_seq: int, limit: int = 200) -> tuple:
    """Messages after `after_seq` in seq order, at most `limit`: (StoredMessage list, has_more,
    last_seq of the session). For participants only, also after the end (read-only)."""
    participants = session_participants(session_id=session_id, user_id=user_id)
    rows = list(Message.objects.filter(session_id=session_id, seq__gt=after_seq).order_by("seq")[: limit + 1])
    messages = [
        StoredMessage.of(
            m, client_user_id=participants.client_user_id, mitra_user_id=participants.mitra_user_id
        )
        for m in rows[:limit]
    ]
    last_seq = ChatSession.objects.filter(pk=session_id).values_list("last_seq", flat=True).get()
    return messages, len(rows) > limit, last_seq


def messages_replay_many(requests) -> list:
    """`messages_replay` for many (user_id, session_id, after_seq, limit) requests at once — the
    `sync`s of a reconnect storm — in two queries whatever their number (plus one more per extra
    round: a round asks each session once; a second one only when the same session is asked from
    two positions in the same batch). Returns, in
    order, a `messages_replay` tuple or the SessionNotFound / NotParticipant it would raise."""
    results = [None] * len(requests)
    session_ids = set()
    for _, session_id, _, _ in requests:
        session_ids.add(str(session_id))
    rows = {
        str(row[0]): row[1:]
        for row in ChatSession.objects.filter(pk__in=session_ids).values_list(
            "id", "status", "client_id", "mitra__user_id", "last_seq"
        )
    }
    rounds = []  # [{session_id: (after_seq, limit, [request indexes])}]
    for index, (user_id, session_id, after_seq, limit) in enumerate(requests):
        session_id = str(session_id)
        row = rows.get(session_id)
        if row is None:
            results[index] = SessionNotFound()
            continue
        participants = Participants(session_id, *row)
        if not participants.includes(user_id):
            results[index] = NotParticipant()
            continue
        for wanted in rounds:
            held = wanted.get(session_id)
            if held is None:
                wanted[session_id] = (after_seq, limit, [index])
                break
            if held[:2] == (after_seq, limit):
                held[2].append(index)
                break
        else:
            rounds.append({session_id: (after_seq, limit, [index])})
    first_ones = _replay_rows_postgres if connection.vendor == "postgresql" else _replay_rows_orm
    for wanted in rounds:
        found = {}
        for message in first_ones(wanted):
            found.setdefault(str(message.session_id), []).append(message)
        for session_id, (_, limit, indexes) in wanted.items():
            _, client_user_id, mitra_user_id, last_seq = rows[session_id]
            found_rows = found.get(session_id, [])
            messages = [
                StoredMessage.of(m, client_user_id=client_user_id, mitra_user_id=mitra_user_id)
                for m in found_rows[:limit]
            ]
            for index in indexes:
                results[index] = (messages, len(found_rows) > limit, last_seq)
    return results


def _replay_rows_orm(wanted) -> list:
    """The first `limit + 1` messages after `after_seq` of each {session_id: (after_seq, limit, _)},
    ordered by session and seq (SQLite, the embedded default: a window over an OR of the sessions)."""
    condition = Q()
    for session_id, (after_seq, _, _) in wanted.items():
        condition |= Q(session_id=session_id, seq__gt=after_seq)
    most = max(limit for _, limit, _ in wanted.values())
    return list(
        Message.objects.filter(condition)
        .annotate(rank=Window(RowNumber(), partition_by=[F("session_id")], order_by=F("seq").asc()))
        .filter(rank__lte=most + 1)
        .order_by("session_id", "seq")
    )


_ReplayRow = namedtuple(
    "_ReplayRow", "id session_id seq sender_id kind body client_msg_id is_masked created_at"
)
_SEQ_MAX = 2**31 - 1  # Message.seq is an integer column: `seq > after_seq` for any larger after_seq is none

_REPLAY_SQL = """
SELECT m.id, m.session_id, m.seq, m.sender_id, m.kind, m.body, m.client_msg_id, m.is_masked, m.created_at
FROM unnest(%s::uuid[], %s::int[], %s::int[]) AS w(session_id, after_seq, take)
CROSS JOIN LATERAL (
    SELECT * FROM {table} m WHERE m.session_id = w.session_id AND m.seq > w.after_seq
    ORDER BY m.seq LIMIT w.take
) m
ORDER BY m.session_id, m.seq
"""


def _replay_rows_postgres(wanted) -> list:
    """`_replay_rows_orm` as one statement (issue 22): the ORM compiled a 500-way OR and a window
    subquery per storm batch (≈ 9 % of a reconnecting process's CPU); here each session's rows
    come from the (session, seq) unique index, `limit + 1` of them, whatever the batch's size."""
    session_ids, after_seqs, fetches = [], [], []
    for session_id, (after_seq, limit, _) in wanted.items():
        session_ids.append(session_id)
        after_seqs.append(min(after_seq, _SEQ_MAX))
        fetches.append(min(limit + 1, _SEQ_MAX))
    with connection.cursor() as cursor:
        cursor.execute(_REPLAY_SQL.format(table=Message._meta.db_table), [session_ids, after_seqs, fetches])
        return [_ReplayRow._make(row) for row in cursor.fetchall()]
