"""The wait estimate's inputs from the database, gathered once for the whole queue: four queries
and one Valkey round trip whatever the queue's length (the estimator: sessions_app/wait_estimate.py)."""

from datetime import timedelta

from django.utils import timezone

from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from mitras.rest import is_resting
from mitras.selectors import presence_of
from sessions_app import preferences
from sessions_app.models import OCCUPYING_STATUSES, ChatSession, Status
from sessions_app.wait_estimate import (
    RECENT_HOURS,
    RECENT_SESSIONS,
    Chat,
    QueueState,
    SessionLengths,
    Waiting,
    queue_etas,
    session_lengths_of,
)


def recent_lengths(*, now) -> SessionLengths:
    rows = (
        ChatSession.objects.filter(
            status=Status.ENDED,
            accepted_at__isnull=False,
            ended_at__gte=now - timedelta(hours=RECENT_HOURS),
        )
        .order_by("-ended_at")
        .values_list("offered_at", "accepted_at", "ended_at", "duration_seconds", "extended_seconds")[
            :RECENT_SESSIONS
        ]
    )
    return session_lengths_of(
        [
            (
                (accepted - offered).total_seconds() if offered and offered <= accepted else 0.0,
                (ended - accepted).total_seconds(),
                duration + extended,
            )
            for offered, accepted, ended, duration, extended in rows
        ]
    )


def queue_state(*, now) -> QueueState:
    lengths = recent_lengths(now=now)
    online = list(
        Mitra.objects.filter(is_online=True, deactivated_at__isnull=True).only(
            "id", "is_online", "deactivated_at", "capacity", "last_heartbeat_at", "rest_until"
        )
    )
    presence = presence_of(online, now=now)
    present = {m.id: m for m in online if presence[m.id].is_present}
    taken = {mitra_id: [] for mitra_id in present}
    occupying = ChatSession.objects.filter(status__in=OCCUPYING_STATUSES, mitra_id__in=list(present))
    for mitra_id, status, offered_at, accepted_at, ends_at, duration, extended in occupying.values_list(
        "mitra_id", "status", "offered_at", "accepted_at", "ends_at", "duration_seconds", "extended_seconds"
    ):
        booked = duration + extended
        if status == Status.ACTIVE and accepted_at and ends_at:
            chat = Chat(
                booked_seconds=booked,
                elapsed_seconds=(now - accepted_at).total_seconds(),
                to_end_seconds=(ends_at - now).total_seconds(),
            )
        else:
            chat = Chat(booked_seconds=booked, elapsed_seconds=(now - (offered_at or now)).total_seconds())
        taken[mitra_id].append(chat)
    # A resting Bestie (mitras/rest.py: crisis cool-down, break) gets no offers: her free slots
    # are left out, so nobody is promised a slot the dispatcher will not fill.
    slots = {
        mitra_id: taken[mitra_id]
        + ([] if is_resting(mitra, now=now) else [None] * max(0, mitra.capacity - len(taken[mitra_id])))
        for mitra_id, mitra in present.items()
    }
    return QueueState(lengths=lengths, slots=slots)


def waiting_of(session, *, now, config) -> Waiting:
    if session.requested_mitra_id and not session.allow_any_mitra:
        return Waiting(booked_seconds=session.duration_seconds, only_mitra_id=session.requested_mitra_id)
    held = set(preferences.preferences_held(session))
    moments = [
        moment for kind, moment in preferences.preferences_relaxed_at(session, config=config) if kind in held
    ]
    held_for = max(0.0, (max(moments) - now).total_seconds()) if moments else 0.0
    return Waiting(booked_seconds=session.duration_seconds, held_for_seconds=held_for)


def waiting_sessions():
    """The queue, first in first out, with only what the estimate and the frames need."""
    return list(
        ChatSession.objects.filter(status=Status.MATCHING, matching_started_at__isnull=False)
        .order_by("matching_started_at", "created_at")
        .only(
            "id",
            "client_id",
            "status",
            "duration_seconds",
            "requested_mitra_id",
            "allow_any_mitra",
            "preferred_topics",
            "preferred_gender",
            "preferred_language",
            "relaxed_preferences",
            "matching_started_at",
            "created_at",
        )  # fmt: skip
    )


def waiting_etas(waiting, *, now=None) -> list:
    """`eta_seconds` of each session of `waiting` (the queue from its head, in order)."""
    if not waiting:
        return []
    now = now or timezone.now()
    config = get_config()
    return queue_etas(queue_state(now=now), [waiting_of(s, now=now, config=config) for s in waiting])


def eta_seconds(*, session, now=None) -> int | None:
    """The estimate for one session (its REST view): None unless it waits."""
    if session.status != Status.MATCHING or session.matching_started_at is None:
        return None
    waiting = waiting_sessions()
    ids = [s.id for s in waiting]
    if session.id not in ids:
        return None
    waiting = waiting[: ids.index(session.id) + 1]
    return waiting_etas(waiting, now=now)[-1]
