"""The wait estimate's inputs from the database, gathered once for the whole queue: four queries
and one Valkey round trip whatever the queue's length (the estimator: sessions_app/wait_estimate.py).

`queue_now()` is the whole queue with every session's place and estimate, shared by all the
threads of a process: under a burst of payments every `session.updated` carries `eta_seconds`
and every dispatch broadcasts `queue.position`, and each would otherwise gather the inputs and
run the estimator over the queue for itself (quadratic in the burst). One computation runs at a
time per process; a caller gets the result of a computation that *started after it asked*, so it
always sees everything committed before its call (never a stale queue), and all the callers that
asked while one computation ran share the next one.
"""

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
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


@dataclass(frozen=True)
class QueuePlace:
    session_id: object
    client_id: int
    position: int  # 1-based, first in first out
    eta_seconds: int | None


@dataclass(frozen=True)
class Queue:
    """The waiting queue at one moment, in order, with every session's estimate."""

    places: list = field(default_factory=list)

    def __post_init__(self):
        object.__setattr__(self, "by_session_id", {place.session_id: place for place in self.places})


def queue_compute() -> Queue:
    waiting = waiting_sessions()
    etas = waiting_etas(waiting)  # one set of inputs for the whole queue
    return Queue(
        places=[
            QueuePlace(session_id=session.id, client_id=session.client_id, position=position, eta_seconds=eta)
            for position, (session, eta) in enumerate(zip(waiting, etas, strict=True), start=1)
        ]
    )


class _SharedFresh:
    """Single flight with freshness: `get()` returns the result of a run of `compute` that
    started after the call (so it reflects every commit before the call); callers that arrive
    while a run is going wait for the next run, which one of them does for all."""

    def __init__(self, compute):
        self.compute = compute
        self.changed = threading.Condition()
        self.running = False
        self.started = 0  # runs started
        self.finished = 0  # the latest run finished (runs finish in order: one at a time)
        self.outcome = None  # (result, exception) of run `finished`

    def get(self):
        with self.changed:
            wanted = self.started + 1  # the next run to start
            while self.finished < wanted:
                if not self.running:
                    self.running = True
                    self.started += 1
                    run = self.started
                    break
                self.changed.wait()
            else:
                result, error = self.outcome
                if error is not None:
                    raise error
                return result
        result, error = None, None
        try:
            result = self.compute()
        except Exception as exc:
            error = exc
        with self.changed:
            self.running = False
            self.finished = run
            self.outcome = (result, error)
            self.changed.notify_all()
        if error is not None:
            raise error
        return result


_shared_queue = _SharedFresh(queue_compute)


def queue_now() -> Queue:
    """The queue as committed now (see the module docstring). Inside a transaction the caller's
    own uncommitted changes must count, so it is computed on the caller's connection."""
    if connection.in_atomic_block:
        return queue_compute()
    return _shared_queue.get()


_this_thread = threading.local()


@contextlib.contextmanager
def estimates_from(queue: Queue):
    """Within the block, this thread's `eta_seconds` answers from `queue` (a broadcast's frames
    carry the estimates of the one queue it computed)."""
    _this_thread.queue = queue
    try:
        yield queue
    finally:
        _this_thread.queue = None


def eta_seconds(*, session, now=None) -> int | None:
    """The estimate for one session (its REST view, `session.updated`): None unless it waits."""
    if session.status != Status.MATCHING or session.matching_started_at is None:
        return None
    queue = getattr(_this_thread, "queue", None)
    if queue is not None and now is None and session.id in queue.by_session_id:
        return queue.by_session_id[session.id].eta_seconds
    if now is None and not connection.in_atomic_block:
        place = _shared_queue.get().by_session_id.get(session.id)
        return place.eta_seconds if place is not None else None
    waiting = waiting_sessions()
    ids = [s.id for s in waiting]
    if session.id not in ids:
        return None
    waiting = waiting[: ids.index(session.id) + 1]
    return waiting_etas(waiting, now=now)[-1]
