"""Reads on sessions."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery, Sum
from django.utils import timezone

from halobestie.errors import NotFound
from payments.models import Payment
from sessions_app.errors import NotParticipant, SessionNotFound
from sessions_app.models import (
    OCCUPYING_STATUSES,
    OPEN_STATUSES,
    ChatSession,
    EarningsEntry,
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
    return ChatSession.objects.filter(client=client, status__in=OPEN_STATUSES).first()


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
    and how many sessions earned them."""
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
        "sessions_count": entries.count(),
    }


def payment_latest_for_session(*, session):
    if hasattr(session, "payments_newest"):  # prefetched by session_list_for_user
        return session.payments_newest[0] if session.payments_newest else None
    return Payment.objects.filter(session=session).order_by("-created_at").first()


def messages_after(*, session, after_seq=0, limit=100):
    return list(
        Message.objects.filter(session=session, seq__gt=after_seq).order_by("seq")[: max(1, min(limit, 500))]
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
