"""The wait estimate against a simulated day (issue 19): how far `eta_seconds` is from the wait.

A discrete-event simulation, no database: arrivals over a generated day, Besties on shifts with
capacity, packages, chat lengths, offers accepted or declined. After every event the dispatcher
offers waiting sessions first in first out to the least-loaded free Bestie who has not refused
them (as sessions_app/matching.py does), then — as `_send_queue_positions` does — the estimate of
every waiting session is computed by the real estimator (`sessions_app.wait_estimate.queue_etas`,
inputs built with its `SessionLengths` from the simulated state, recent lengths by its
`session_lengths_of` over the chats ended in the last `RECENT_HOURS` hours). Each estimate is
compared with the wait that followed: the seconds from that broadcast until the session's next
offer. Sessions that ran out the matching window have no such wait and are counted apart.

Run alone: `python -m bench.wait_estimate` (a full day; `--hours 3` for less). `make bench` runs it
as the `wait_estimate` scenario; `tests/sessions_app/test_wait_estimate.py` runs a small day.
Results: docs/PERFORMANCE.md § "Wait estimate".
"""

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from sessions_app.wait_estimate import (
    RECENT_HOURS,
    RECENT_SESSIONS,
    Chat,
    QueueState,
    Waiting,
    queue_etas,
    session_lengths_of,
)

HOUR = 3600
PACKAGES = ((15 * 60, 0.40), (30 * 60, 0.40), (60 * 60, 0.20))  # booked seconds, share of clients
MATCHING_WINDOW = 600
OFFER_TIMEOUT = 60
DECLINE_SHARE = 0.08
# Arrivals per hour at each hour of the day (Asia/Jakarta): quiet nights, a lunch bump, busy evenings.
ARRIVALS_PER_HOUR = (
    20, 12, 8, 6, 6, 10, 20, 36, 52, 60, 68, 76,
    88, 84, 72, 68, 72, 84, 108, 132, 148, 144, 112, 56,
)  # fmt: skip
# Besties starting a shift at each hour of the day; each shift lasts 3 to 7 hours.
SHIFT_STARTS = (
    2, 0, 0, 0, 0, 1, 3, 3, 4, 2, 2, 2,
    3, 2, 2, 2, 3, 5, 6, 4, 3, 1, 1, 1,
)  # fmt: skip


@dataclass
class Bestie:
    id: int
    capacity: int
    online_from: float
    online_until: float
    chats: dict = field(default_factory=dict)  # session id → Session

    def is_present(self, now):
        return self.online_from <= now < self.online_until


@dataclass
class Session:
    id: int
    arrived_at: float
    booked: int
    will_use: float  # share of the booked time the chat will last
    refused: set = field(default_factory=set)
    offered_at: float | None = None
    accepted_at: float | None = None
    ended_at: float | None = None
    unmatched: bool = False
    estimates: list = field(default_factory=list)  # (at, eta) while waiting, one per broadcast
    waits: list = field(default_factory=list)  # (matching started, offered) for each wait


def _day(rng, hours, scale, start_hour):
    """Arrivals (Poisson, rate by hour) and Besties' shifts for `hours` hours from `start_hour`
    (the clock starts at 0 there)."""
    arrivals = []
    for hour in range(hours):
        rate = ARRIVALS_PER_HOUR[(start_hour + hour) % 24] * scale
        at = hour * HOUR + rng.expovariate(rate / HOUR)
        while at < (hour + 1) * HOUR:
            arrivals.append(at)
            at += rng.expovariate(rate / HOUR)
    besties = []
    for hour in range(-7, hours):  # shifts started before midnight still run at the start
        for _ in range(round(SHIFT_STARTS[(start_hour + hour) % 24] * scale)):
            start = hour * HOUR + rng.uniform(0, HOUR)
            length = rng.uniform(3, 7) * HOUR
            if start + length > 0:
                besties.append(
                    Bestie(id=len(besties) + 1, capacity=rng.choice((2, 3, 3)), online_from=start,
                           online_until=start + length)
                )  # fmt: skip
    return arrivals, besties


def _booked(rng):
    pick, total = rng.random(), 0.0
    for seconds, share in PACKAGES:
        total += share
        if pick < total:
            return seconds
    return PACKAGES[-1][0]


def _will_use(rng):
    """Half the chats run to the end; the rest end early, anywhere after a fifth of the time."""
    return 1.0 if rng.random() < 0.5 else rng.uniform(0.2, 1.0)


def simulate(*, hours=24, start_hour=0, seed=19, scale=1.0, estimator=queue_etas) -> list:
    """Runs the day (or `hours` of it from `start_hour`); returns every session (with its
    estimates and waits)."""
    rng = random.Random(seed)
    arrivals, besties = _day(rng, hours, scale, start_hour)
    events = []  # (time, order, kind, payload)
    order = 0

    def at(moment, kind, payload=None):
        nonlocal order
        order += 1
        heapq.heappush(events, (moment, order, kind, payload))

    sessions = []
    for moment in arrivals:
        session = Session(
            id=len(sessions) + 1, arrived_at=moment, booked=_booked(rng), will_use=_will_use(rng)
        )
        sessions.append(session)
        at(moment, "arrive", session)
    for bestie in besties:
        at(max(0.0, bestie.online_from), "online", bestie)
    queue = []  # waiting sessions, first in first out (by when they started waiting)
    recent = deque(maxlen=RECENT_SESSIONS)  # (ended_at, accept_seconds, chat_seconds, booked)

    def dispatch(now):
        for session in list(queue):
            free = [
                b for b in besties
                if b.is_present(now) and len(b.chats) < b.capacity and b.id not in session.refused
            ]  # fmt: skip
            if not free:
                continue
            bestie = min(free, key=lambda b: (len(b.chats), b.id))
            queue.remove(session)
            session.offered_at = now
            session.waits[-1] = (session.waits[-1][0], now)
            bestie.chats[session.id] = session
            delay = rng.uniform(5, 40)
            if rng.random() < DECLINE_SHARE:
                at(now + delay, "decline", (session, bestie))
            else:
                at(now + delay, "accept", (session, bestie))

    def broadcast(now):
        if not queue:
            return
        samples = [(a, c, b) for ended, a, c, b in recent if ended >= now - RECENT_HOURS * HOUR]
        lengths = session_lengths_of(samples)
        slots = {}
        for bestie in besties:
            if not bestie.is_present(now):
                continue
            taken = [
                Chat(booked_seconds=chat.booked, elapsed_seconds=now - chat.offered_at)
                if chat.accepted_at is None
                else Chat(
                    booked_seconds=chat.booked,
                    elapsed_seconds=now - chat.accepted_at,
                    to_end_seconds=chat.accepted_at + chat.booked - now,
                )
                for chat in bestie.chats.values()
            ]
            slots[bestie.id] = taken + [None] * (bestie.capacity - len(taken))
        etas = estimator(
            QueueState(lengths=lengths, slots=slots), [Waiting(booked_seconds=s.booked) for s in queue]
        )
        for session, eta in zip(queue, etas, strict=True):
            session.estimates.append((now, eta, len(session.waits) - 1))

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            payload.waits.append((now, None))
            queue.append(payload)
            at(now + MATCHING_WINDOW, "window", payload)
        elif kind == "accept":
            session, bestie = payload
            session.accepted_at = now
            at(now + session.booked * session.will_use, "end", (session, bestie))
        elif kind == "decline":
            session, bestie = payload
            del bestie.chats[session.id]
            session.refused.add(bestie.id)
            session.offered_at = None
            if now >= session.arrived_at + MATCHING_WINDOW:  # the window ran out meanwhile
                session.unmatched = True
            else:  # back at its old place in the queue (ordered by when it first started waiting)
                session.waits.append((now, None))
                queue.append(session)
                queue.sort(key=lambda s: s.arrived_at)
        elif kind == "end":
            session, bestie = payload
            session.ended_at = now
            del bestie.chats[session.id]
            recent.append(
                (now, session.accepted_at - session.offered_at, now - session.accepted_at, session.booked)
            )
        elif kind == "window":
            if payload in queue and payload.accepted_at is None:
                queue.remove(payload)
                payload.unmatched = True
        elif kind == "online":
            at(payload.online_until, "offline", payload)
        dispatch(now)
        broadcast(now)
    return sessions


def _percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _errors(pairs):
    """{median, p90} of |estimate − actual| (seconds) and of |estimate − actual| / max(actual, 60)."""
    absolute = [abs(e - a) for e, a in pairs]
    relative = [abs(e - a) / max(a, 60) for e, a in pairs]
    return {
        "count": len(pairs),
        "median_abs_s": round(statistics.median(absolute), 1) if absolute else None,
        "p90_abs_s": round(_percentile(absolute, 0.9), 1) if absolute else None,
        "median_rel": round(statistics.median(relative), 3) if relative else None,
        "p90_rel": round(_percentile(relative, 0.9), 3) if relative else None,
    }


def measure(sessions) -> dict:
    """The estimator's error at the first broadcast a session waited through, and over every
    broadcast (the remaining wait), for the waits that ended in an offer."""
    first, every, unmatched_estimates = [], [], []
    for session in sessions:
        for at, eta, wait_index in session.estimates:
            if eta is None:
                continue
            started, offered = session.waits[wait_index]
            if offered is None:
                if session.unmatched:
                    unmatched_estimates.append(eta)
                continue
            every.append((eta, offered - at))
        waited = [(at, eta, i) for at, eta, i in session.estimates if i == 0 and eta is not None]
        if waited and session.waits[0][1] is not None:
            at, eta, _ = waited[0]
            first.append((eta, session.waits[0][1] - at))
    waits = [offered - started for s in sessions for started, offered in s.waits[:1] if offered is not None]
    return {
        "sessions": len(sessions),
        "waited": sum(1 for s in sessions if s.estimates),
        "unmatched": sum(1 for s in sessions if s.unmatched),
        "wait_median_s": round(statistics.median(waits), 1) if waits else None,
        "wait_p90_s": round(_percentile(waits, 0.9), 1) if waits else None,
        "first_estimate": _errors(first),
        "every_estimate": _errors(every),
        "distinct_first_estimates": len({e for e, _ in first}),
        "unmatched_estimated_past_window_share": (
            round(sum(1 for e in unmatched_estimates if e >= MATCHING_WINDOW) / len(unmatched_estimates), 3)
            if unmatched_estimates
            else None
        ),  # fmt: skip
        "pairs_first": first,
    }


def constant_estimator(value):
    """A baseline: the same estimate for everybody (for comparison only)."""

    def estimate(state, waiting):
        return [value] * len(waiting)

    return estimate


def run(*, hours=24, start_hour=0, seed=19, scale=1.0) -> dict:
    """The scenario `make bench` runs: our estimator (and how long one broadcast's estimate takes)
    and, for scale, the best constant estimate (the median wait, known only in hindsight)."""
    day = {"hours": hours, "start_hour": start_hour, "seed": seed, "scale": scale}
    spent = []

    def timed(state, waiting):
        started = time.perf_counter()
        etas = queue_etas(state, waiting)
        spent.append((time.perf_counter() - started) * 1000)
        return etas

    ours = measure(simulate(**day, estimator=timed))
    first = ours.pop("pairs_first")
    best_constant = round(statistics.median(actual for _, actual in first)) if first else 0
    constant = measure(simulate(**day, estimator=constant_estimator(best_constant)))
    constant.pop("pairs_first")
    return {
        **day,
        "broadcasts": len(spent),
        "estimate_ms_median": round(statistics.median(spent), 2) if spent else None,
        "estimate_ms_p99": round(_percentile(spent, 0.99), 2) if spent else None,
        "ours": ours,
        "constant_baseline": {"eta_seconds": best_constant, **constant},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--start-hour", type=int, default=0)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = run(hours=args.hours, start_hour=args.start_hour, seed=args.seed, scale=args.scale)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
