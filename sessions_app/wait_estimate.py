"""The wait estimate: `eta_seconds`, how long a session in the queue will likely wait for an offer.

The estimator (stated for the apps in docs/realtime.md, measured by bench/wait_estimate.py):

1. **Recent lengths.** The chats that ended in the last `RECENT_HOURS` hours (at most the last
   `RECENT_SESSIONS`): for each, the share of its booked time it used, `(ended_at − accepted_at) /
   booked` (booked = package + extensions, at most 1), and its offer → accept delay. With fewer
   than `MIN_RECENT` such chats: every chat is taken to use its whole package, accepted at once.
2. **Capacity.** Every slot of every present Bestie (online, not deactivated, heartbeat fresh):
   free, or taken by an offered session or an active chat.
3. **The queue ahead, in `FUTURES` drawn futures.** In each future, every taken slot frees after a
   time drawn from the recent chats: an active chat that has run `e` seconds of `booked` ends after
   `u × booked − e` for a share `u` drawn among the recent shares longer than `e` (never after its
   `ends_at`; when it is already longer than every recent chat, uniformly before its `ends_at`); an
   offered session after a drawn accept delay plus a drawn share of its booked time. The waiting
   sessions, first in first out, each take the slot that frees first; that slot is then taken for a
   drawn accept delay plus a drawn share of the session's own package. A free slot the dispatcher
   left unused while a session waits did not fit the session's preferences: it counts for that
   session only once its last held preference is let go (the runtime config's relax delays).
   **`eta_seconds` is the median, over the futures, of the moment the session's slot frees.**
   Drawing (rather than taking each chat's typical end) matters: the first of thirty chats to end
   ends much earlier than the earliest of thirty typical ends. The draws are seeded: the same
   inputs give the same estimate; each future has its own source, drawn in queue order, so a
   session's estimate depends only on the sessions ahead of it (the queue's head estimated alone
   gets the same numbers as within the whole queue).
4. **Only this one** (`allow_any_mitra=false`): the median moment the requested Bestie's first
   slot frees; null when she is not present, or when she has a free slot but the session waits
   (she declined it, or a block stands between them). Null as well when no Bestie is present at
   all, and whenever the session is not waiting.

The estimate may pass the end of the matching window: the app may then say a refund is likely.

This module is pure (numbers in, numbers out, no Django), so the simulation runs the very same
functions on a simulated queue; sessions_app/wait_inputs.py gathers the inputs from the database
once for the whole queue.
"""

import heapq
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RECENT_HOURS = 6
RECENT_SESSIONS = 100
MIN_RECENT = 5
FUTURES = 11  # drawn futures per broadcast; odd, so the median is one of them (31 measured no better)
SEED = 19  # fixed: the same inputs give the same estimate (future n draws from SEED + n)


@dataclass(frozen=True)
class SessionLengths:
    """Step 1: recent chats' used shares of their booked time, and their offer → accept delays.
    Defaults (too few recent chats): every chat runs its whole package, accepted at once."""

    used_fractions: tuple = (1.0,)
    accept_seconds: tuple = (0.0,)

    def occupancy(self, booked_seconds, draw) -> float:
        """A slot offered now: how long it stays taken (one draw)."""
        return draw.choice(self.accept_seconds) + draw.choice(self.used_fractions) * booked_seconds

    def remaining_draw(self, chat):
        """A taken slot: a function of a random source giving the seconds until it frees (given
        how long it has run). Precomputed once per broadcast, drawn once per future."""
        if chat.to_end_seconds is None:  # offered, not yet accepted
            return lambda draw: max(1.0, self.occupancy(chat.booked_seconds, draw) - chat.elapsed_seconds)
        to_end = max(1.0, chat.to_end_seconds)
        booked, elapsed = chat.booked_seconds, chat.elapsed_seconds
        longer = [
            max(1.0, min(used * booked - elapsed, to_end))
            for used in self.used_fractions
            if used * booked > elapsed
        ]
        if not longer:  # longer than every recent chat: it ends before its ends_at, no telling when
            return lambda draw: draw.uniform(1.0, to_end)
        return lambda draw: draw.choice(longer)


def session_lengths_of(samples: Sequence) -> SessionLengths:
    """`samples`: (accept_seconds, chat_seconds, booked_seconds) of recently ended chats."""
    usable = [(a, c, b) for a, c, b in samples if b > 0 and c >= 0]
    if len(usable) < MIN_RECENT:
        return SessionLengths()
    return SessionLengths(
        used_fractions=tuple(sorted(min(1.0, c / b) for _, c, b in usable)),
        accept_seconds=tuple(sorted(max(0.0, a) for a, _, _ in usable)),
    )


@dataclass(frozen=True)
class Chat:
    """A taken slot: an offered session (`to_end_seconds` None) or an active chat."""

    booked_seconds: float
    elapsed_seconds: float  # since accepted (active), since offered (offered)
    to_end_seconds: float | None = None  # active: until its ends_at


@dataclass(frozen=True)
class QueueState:
    """The inputs of one broadcast: recent lengths and every present Bestie's slots."""

    lengths: SessionLengths
    # {mitra id: her slots, each a Chat or None (free)}
    slots: Mapping[int, Sequence] = field(default_factory=dict)


@dataclass(frozen=True)
class Waiting:
    """A session in the queue, as the estimator sees it."""

    booked_seconds: int
    held_for_seconds: float = 0.0  # until its last held preference is let go
    only_mitra_id: int | None = None  # "only this one"


def _one_future(state, waiting, draw, remaining) -> list:
    """Step 3 in one drawn future: each waiting session's start, or None."""
    busy = [sample(draw) for samples in remaining.values() for sample in samples]
    free = sum(1 for chats in state.slots.values() for chat in chats if chat is None)
    heapq.heapify(busy)
    starts = []
    for session in waiting:
        if session.only_mitra_id is not None:
            own = state.slots.get(session.only_mitra_id)
            if not own or any(chat is None for chat in own):
                starts.append(None)
            else:
                starts.append(min(sample(draw) for sample in remaining[session.only_mitra_id]))
            continue
        if free and (not busy or session.held_for_seconds <= busy[0]):
            free -= 1
            start = max(0.0, session.held_for_seconds)
        else:
            start = heapq.heappop(busy)
        starts.append(start)
        heapq.heappush(busy, start + state.lengths.occupancy(session.booked_seconds, draw))
    return starts


def queue_etas(state: QueueState, waiting: Sequence[Waiting], *, futures: int = FUTURES) -> list:
    """Estimated seconds until each waiting session (in queue order) is offered: the median over
    `futures` futures drawn from the recent lengths; None where step 4 says so."""
    if not any(state.slots.values()):
        return [None] * len(waiting)
    remaining = {
        mitra_id: [state.lengths.remaining_draw(chat) for chat in chats if chat is not None]
        for mitra_id, chats in state.slots.items()
    }
    runs = [_one_future(state, waiting, random.Random(SEED + n), remaining) for n in range(futures)]
    return [
        None if starts[0] is None else round(statistics.median(starts))
        for starts in zip(*runs, strict=True)
    ] if waiting else []  # fmt: skip
