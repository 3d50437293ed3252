"""Matching: the queue, offers, and choosing a Bestie.

Capacity invariant: a mitra's load (offered + active sessions, the `Mitra.load` column changed
with F() by `effects.load_changed` in the transaction that changes the session) only grows in
`queue_dispatch`, and only while that dispatcher holds the mitra's row lock: the load is read from
the locked row, so two dispatchers can never both fill a mitra's last slot. No session is offered
twice: a dispatcher offers only the waiting sessions whose rows it locked (status re-checked by
Postgres on the locked row version).

Dispatch in bulk, no global lock (issue 22). One dispatch takes up to `batch` waiting sessions
(FIFO, `FOR UPDATE SKIP LOCKED`) and every online Bestie with a free slot (`FOR UPDATE SKIP
LOCKED`, by id), ranks and offers in one transaction. Dispatchers in any number of processes or
replicas therefore run side by side on disjoint sessions and disjoint Besties and never wait for
each other, so there is no deadlock among them. A dispatcher that left sessions waiting while a
free Bestie was held by another dispatcher dispatches once more after commit, this time waiting
for the Besties' row locks (taken in id order: waiters cannot deadlock each other), so no session
is stranded next to a free slot (the scheduler's tick dispatches as well). Within one process,
dispatches requested after commit while one is running are coalesced into one more run, which
places everything committed meanwhile (one round for many payments, not one each); a request that
finds no Bestie with a free slot (read without locks) runs no round at all — a slot that frees
later frees in a transaction that dispatches after its commit.

One round offers all it places together (`_offer_many`): one UPDATE of the sessions, one INSERT of
their offers, one of their timeline events, one UPDATE of the Besties' loads and last assignment,
and after commit one read for the Valkey mirror and one for the frames, whose `session.offer` and
`session.updated` all go out in one pipelined publish (events.send_many).

After a dispatch, the queue broadcast (`queue.position` to every waiting client, and the due
`session.updated` of sessions just paid, `notify_paid`) is coalesced and spaced per process: one
at a time, at most one every BROADCAST_SPACING_SECONDS (stretched on a slow or busy machine so
that broadcasts take at most BROADCAST_SHARE of the time, up to BROADCAST_SPACING_MAX_SECONDS),
never dropped, from one queue estimate (wait_inputs.queue_now), all its frames in one publish.

What bounds it (docs/PERFORMANCE.md): a round costs a fixed dozen statements whatever it places,
all in one transaction; under a burst of payments what is left per payment is the payment's own
transaction (lock, update, timeline event, commit), and per process the queue broadcasts (each
gathers the queue's inputs and runs the estimator over the whole queue). Dispatchers that want the
same Besties at the same moment share them (one gets a Bestie, the other the rest or its retry),
so with very few free Besties concurrent dispatchers effectively take turns. Order is first in
first out within a dispatch and across dispatchers up to the rows another dispatcher holds at
that moment.
"""

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Case, F, Prefetch, Value, When
from django.utils import timezone

from halobestie.runtime.selectors import get_config
from mitras.favourites import favourite_ids_by_client
from mitras.models import Mitra
from mitras.rest import mitras_ready_for_offers
from mitras.schedule import with_working_now
from mitras.selectors import last_heartbeats
from mitras.services import mitra_loads_change
from payments.models import Payment
from sessions_app import blocking, events, notifications, observations, preferences, wait_inputs
from sessions_app.booking_slots import next_booking_starts
from sessions_app.effects import (
    load_changed,
    notify_updated,
    participant_user_ids,
    record,
    record_many,
    user_ids_of_mitras,
)
from sessions_app.models import (
    ChatSession,
    OfferOutcome,
    SessionOffer,
    Status,
)
from sessions_app.serializers import session_payloads
from sessions_app.states import check_transition

logger = logging.getLogger(__name__)


def dispatch_after_commit():
    transaction.on_commit(lambda: _safe_dispatch())


class _Coalesced:
    """Run `job` now in the calling thread unless another thread of this process is running it:
    then that thread runs it once more when it is done (many requests, one more run). The running
    thread repeats while requests keep coming in meanwhile: under a steady stream of payments one
    request thread may dispatch for several rounds (each round places everything waiting)."""

    def __init__(self, job):
        self.job = job
        self.lock = threading.Lock()
        self.running = False
        self.again = False

    def __call__(self):
        with self.lock:
            if self.running:
                self.again = True
                return
            self.running = True
        try:
            while True:
                with self.lock:
                    self.again = False
                self.job()
                with self.lock:
                    if not self.again:
                        self.running = False
                        return
        except BaseException:
            with self.lock:
                self.running = False
            raise


def _dispatch_and_retry():
    # No Bestie with a free slot (read without locks): nothing to place, no round, only the queue
    # broadcast a round would have asked for. A slot freed after this read frees in a transaction
    # that dispatches after its commit (an end, a decline, an expiry, a Bestie coming online) and
    # sees every session waiting now; the scheduler's tick (a full round) lets go of preferences
    # as they fall due.
    if not _free_slot_exists():
        _send_queue_positions()
        return
    if queue_dispatch().contended:
        queue_dispatch(wait_for_locks=True)
    if _paid_updates:  # the dispatch had nothing to broadcast: the paid sessions' updates still go
        _send_queue_positions()


def _free_slots():
    """Besties who may take an offer now, as far as their rows say (presence and rest are checked
    by the dispatcher under their locks)."""
    return Mitra.objects.filter(is_online=True, deactivated_at__isnull=True, load__lt=F("capacity"))


def _free_slot_exists():
    return _free_slots().exists()


_dispatch_coalesced = _Coalesced(lambda: _dispatch_and_retry())


def _safe_dispatch():
    try:
        _dispatch_coalesced()
    except Exception:
        # The scheduler dispatches every tick as well: a failure here delays, never loses.
        logger.exception("queue dispatch after commit failed")


def withdraw_pending_offer(session, *, outcome, now):
    observations.offer_ended(session, outcome=outcome, now=now)
    SessionOffer.objects.filter(session=session, outcome=OfferOutcome.PENDING).update(
        outcome=outcome, responded_at=now
    )


def _choose_mitra(session, candidates, loads, refused, favourite_ids):
    """The requested mitra when free (and not refused), else — if allowed — the free mitra who best
    fits the session's preferences still held (sessions_app/preferences.py). `candidates` are
    locked rows with load < capacity."""
    if session.requested_mitra_id:
        requested = candidates.get(session.requested_mitra_id)
        if requested is not None and (session.id, requested.id) not in refused:
            return requested
        if not session.allow_any_mitra:
            return None
    free = [m for m in candidates.values() if (session.id, m.id) not in refused]
    if not free:
        return None
    return preferences.choose_mitra(session, free, loads, favourite_ids)


def _relax_preferences(session, *, now, config):
    """Precondition: session locked and matching. Lets go the preferences due by now; the client
    hears which are still held (`session.updated`)."""
    due = preferences.preferences_due_relaxed(session, now=now, config=config)
    newly = [kind for kind in due if kind not in session.relaxed_preferences]
    if not newly:
        return
    session.relaxed_preferences = [*session.relaxed_preferences, *newly]
    session.save(update_fields=["relaxed_preferences", "updated_at"])
    record(session, "preferences_relaxed", relaxed=newly, held=preferences.preferences_held(session))
    notify_updated(session)


class _Offered(list):
    """queue_dispatch's result: the offered session ids."""


def queue_dispatch(*, now=None, batch: int = 200, wait_for_locks: bool = False) -> list:
    """Offer waiting sessions to free mitras, first in first out. Returns the offered session ids
    (`.contended` is true when another dispatcher held rows this one skipped — waiting sessions or
    free Besties — and something may be left to place: dispatch again with `wait_for_locks=True`,
    as `dispatch_after_commit` does; that run waits for the rows instead of skipping them).

    Safe to call from anywhere at any time, from any number of processes (after a payment, a
    decline, a freed slot, a mitra going online, and every scheduler tick): see the module
    docstring for why concurrent dispatchers never overbook or offer a session twice.
    """
    now = now or timezone.now()
    offered = _Offered()
    offered.contended = False
    if not ChatSession.objects.filter(status=Status.MATCHING).exists():
        return offered  # checked before locking: most scheduler ticks find nobody waiting
    config = get_config()
    with transaction.atomic():
        waiting = list(
            ChatSession.objects.select_for_update(skip_locked=not wait_for_locks, of=("self",))
            .filter(status=Status.MATCHING)
            .order_by("matching_started_at", "created_at")[:batch]
        )
        if not waiting:
            offered.contended = not wait_for_locks  # another dispatcher holds them all
            return offered
        # Only Besties with a free slot are locked (the load re-checked by Postgres on the locked
        # row); one held by another dispatcher is skipped, unless this is the retry. Working hours
        # rank, never exclude (mitras/schedule.py).
        free = _free_slots()
        mitras = list(
            with_working_now(
                free.select_for_update(skip_locked=not wait_for_locks, of=("self",)), now=now
            ).order_by("id")
        )
        locked_ids = [m.id for m in mitras]
        if mitras:
            # Present = toggled online and heartbeat fresh (Valkey, else Postgres); the sweeper
            # switches stale mitras offline later, but they get no offers meanwhile.
            beats = last_heartbeats(mitras)
            ttl = config.heartbeat_ttl_seconds
            mitras = [
                m for m in mitras if beats[m.id] is not None and (now - beats[m.id]).total_seconds() < ttl
            ]
            mitras = mitras_ready_for_offers(mitras, now=now)  # resting: no offers (mitras/rest.py)
        loads = {m.id: m.load for m in mitras}  # read from the locked rows
        candidates = {m.id: m for m in mitras if loads[m.id] < m.capacity}
        refused, favourites, booked_from = set(), {}, {}
        if candidates:  # (with no free Bestie, none of this is needed: no reads for nothing)
            refused = set(
                SessionOffer.objects.filter(session__in=waiting)
                .exclude(outcome__in=[OfferOutcome.PENDING, OfferOutcome.ACCEPTED])
                .values_list("session_id", "mitra_id")
            )
            refused |= blocking.blocked_pairs(waiting)  # a blocked pair is never offered (issue 20)
            favourites = favourite_ids_by_client({session.client_id for session in waiting})
            booked_from = next_booking_starts(mitra_ids=list(candidates), now=now)  # issue 25
        unplaced = 0
        placements = []  # (session, mitra), offered together below
        for session in waiting:
            _relax_preferences(session, now=now, config=config)
            if not candidates:
                unplaced += 1
                continue
            mitra = _choose_mitra(
                session,
                _clear_of_bookings(
                    candidates, booked_from, session, now, accept_within=config.offer_timeout_seconds
                ),
                loads, refused,
                favourites.get(session.client_id, set()),
            )  # fmt: skip
            if mitra is None:
                unplaced += 1
                continue
            placements.append((session, mitra))
            mitra.last_assigned_at = now  # ranks the rest of this dispatch as the row will
            loads[mitra.id] += 1
            if loads[mitra.id] >= mitra.capacity:
                del candidates[mitra.id]
        _offer_many(placements, now=now, timeout=config.offer_timeout_seconds)
        offered.extend(session.id for session, _ in placements)
        if not wait_for_locks:
            # Skipped rows another dispatcher holds: a free Bestie while sessions wait here, or a
            # waiting session while Besties are still free here.
            offered.contended = bool(
                (unplaced and free.exclude(id__in=locked_ids).exists())
                or (
                    candidates
                    and ChatSession.objects.filter(status=Status.MATCHING)
                    .exclude(id__in=[session.id for session in waiting])
                    .exists()
                )
            )
        transaction.on_commit(lambda: _send_queue_positions())
    return offered


def _clear_of_bookings(candidates, booked_from, session, now, *, accept_within=0):
    """The candidates this session would not run into a booking of (bookings.py): it must end,
    at its booked length, before the Bestie's next booking less the buffer, even if accepted at
    the last moment of the offer (its time starts at the accept)."""
    if not booked_from:
        return candidates
    ends = now + timedelta(seconds=accept_within + session.duration_seconds)
    return {mid: m for mid, m in candidates.items() if mid not in booked_from or ends <= booked_from[mid]}


def offer_booked(session, mitra, *, now, timeout):
    """Precondition: a booked session locked and scheduled, its Bestie's row locked. The booked
    Bestie gets the offer whatever their load: the dispatcher kept on-demand sessions that would
    run into the booking away (sessions_app/bookings.py)."""
    _offer(session, mitra, now=now, timeout=timeout)


def mitra_available_dispatch(mitra_id):
    """Hook for mitras.hooks.on_mitra_available: a slot may be free, dispatch the queue."""
    _dispatch_coalesced()


def _offer(session, mitra, *, now, timeout):
    """Precondition: session locked (matching, or scheduled for its booking), mitra locked."""
    _offer_many([(session, mitra)], now=now, timeout=timeout)


def _offer_many(placements, *, now, timeout):
    """Precondition: every session locked and matching (or scheduled: a booking's start), every
    mitra locked with a free slot for each session placed on it. Offers each session to its
    mitra in five statements whatever their number (the sessions, their offers, their timeline
    events, the Besties' loads and last assignment, and the mirror's read after commit). After
    commit each Bestie gets `session.offer` and each client `session.updated`, all in one
    send (`_announce_offers`)."""
    if not placements:
        return
    expires_at = now + timedelta(seconds=timeout)
    for session, mitra in placements:
        check_transition(session, Status.OFFERED)
        session.status = Status.OFFERED
        session.mitra = mitra
        session.offered_at = now
        session.offer_expires_at = expires_at
        session.updated_at = now
        mitra.last_assigned_at = now
    ChatSession.objects.filter(pk__in=[session.pk for session, _ in placements]).update(
        status=Status.OFFERED,
        mitra_id=Case(*(When(pk=session.pk, then=Value(mitra.pk)) for session, mitra in placements)),
        offered_at=now,
        offer_expires_at=expires_at,
        updated_at=now,
    )
    SessionOffer.objects.bulk_create(
        [
            SessionOffer(session=session, mitra=mitra, offered_at=now, expires_at=expires_at)
            for session, mitra in placements
        ]
    )
    record_many("offered", [(session, {"mitra_id": mitra.id}) for session, mitra in placements])
    mitra_loads_change(deltas=Counter(mitra.id for _, mitra in placements), assigned_at=now)
    for session, _ in placements:
        observations.offer_made(session, now=now)
    offers = {session.id: mitra.user_id for session, mitra in placements}
    transaction.on_commit(lambda: _announce_offers(offers))


def _announce_offers(offers):
    """After commit: each offer still pending ({session id: the Bestie's user id}) to its Bestie
    (`session.offer`, and a push) and to its client (`session.updated`), in one send."""
    fresh = [
        session
        for session in _sessions_fresh(offers)
        if session.status == Status.OFFERED
        and session.mitra is not None
        and session.mitra.user_id == offers[session.id]
    ]
    frames = []
    for session, payload in zip(fresh, session_payloads(fresh), strict=True):
        frames.append(([offers[session.id]], {"type": "session.offer", "session": payload}))
        frames.append(([session.client_id], {"type": "session.updated", "session": payload}))
    events.send_many(frames)
    for session in fresh:
        notifications.offer_made(session=session, mitra_user_id=offers[session.id])


_paid_updates = {}  # session id → user ids: paid sessions whose `session.updated` is due
_paid_updates_lock = threading.Lock()


def notify_paid(session):
    """Precondition: `session` locked, just paid and matching. After commit its participants get
    `session.updated`, sent by this process's next queue broadcast (which the dispatch after the
    payment runs) with the estimate of the queue that broadcast computes: a burst of payments
    shares one queue estimate per broadcast instead of one each."""
    session_id, user_ids = session.pk, participant_user_ids(session)

    def due():
        with _paid_updates_lock:
            _paid_updates[session_id] = user_ids

    transaction.on_commit(due)


def _take_paid_updates():
    with _paid_updates_lock:
        taken = dict(_paid_updates)
        _paid_updates.clear()
    return taken


def _sessions_fresh(session_ids):
    """The committed sessions with everything their payload reads: two queries for any number."""
    if not session_ids:
        return []
    newest_first = Payment.objects.order_by("-created_at")
    return list(
        ChatSession.objects.select_related("client", "mitra", "rating")
        .prefetch_related(Prefetch("payments", queryset=newest_first, to_attr="payments_newest"))
        .filter(pk__in=list(session_ids))
    )


def _paid_updates_frames(updates, queue):
    """`session.updated` for the paid sessions still waiting, their place and estimate from
    `queue` (one that has left the queue since sent its own `session.updated` when it left: an
    offer, a cancellation)."""
    waiting = []
    for fresh in _sessions_fresh(updates):
        place = queue.by_session_id.get(fresh.id)
        if fresh.status == Status.MATCHING and place is not None:
            fresh.queue_ahead = place.position - 1
            waiting.append(fresh)
    with wait_inputs.estimates_from(queue):
        payloads = session_payloads(waiting)
    return [
        (updates[fresh.id], {"type": "session.updated", "session": payload})
        for fresh, payload in zip(waiting, payloads, strict=True)
    ]


def _queue_positions_send():
    """The due `session.updated` of paid sessions, then `queue.position` (place and
    `eta_seconds`) to every waiting client, all from the queue as committed when the broadcast
    starts (wait_inputs.queue_now), in one send."""
    updates = _take_paid_updates()
    queue = wait_inputs.queue_now()
    positions = [
        (
            [place.client_id],
            {
                "type": "queue.position",
                "session_id": str(place.session_id),
                "position": place.position,
                "eta_seconds": place.eta_seconds,
            },
        )
        for place in queue.places
    ]
    events.send_many([*_paid_updates_frames(updates, queue), *positions], line="queue.position")


BROADCAST_SPACING_SECONDS = 0.25
BROADCAST_SHARE = 0.2  # of the time at most, under a burst (each broadcast: one queue estimate)
BROADCAST_SPACING_MAX_SECONDS = 1.0  # however slow: a waiting client's place is at most this old


class _Spaced:
    """Run `job` at most once per `spacing` seconds per process, one run at a time, never a
    request dropped: a request within `spacing` of the last run's start is served by one timer at
    the end of the spacing (however many requests come meanwhile), whose run starts after them
    and so sees their commits; a request while a run goes on gets one more run after it
    (_Coalesced). The spacing stretches, up to `longest`, to `1 / share` times the duration of
    the last run, so that under a burst the runs take at most that share of the time (a slow or
    busy machine, where a run also waits for the CPU: fewer runs, each still with everything
    committed before it started)."""

    def __init__(self, job, *, spacing, share=1.0, longest=None):
        self.job = job
        self.coalesced = _Coalesced(self._timed)
        self.spacing = spacing
        self.share = share
        self.longest = spacing if longest is None else longest
        self.lock = threading.Lock()
        self.last_started = float("-inf")
        self.last_duration = 0.0
        self.timer = None

    def _timed(self):
        started = time.monotonic()
        try:
            self.job()
        finally:
            self.last_duration = time.monotonic() - started

    def __call__(self):
        with self.lock:
            if self.timer is not None:
                return  # the timer's run comes after this request
            spacing = min(self.longest, max(self.spacing, self.last_duration / self.share))
            wait = self.last_started + spacing - time.monotonic()
            if wait > 0:
                self.timer = threading.Timer(wait, self._run_from_timer)
                self.timer.daemon = True
                self.timer.start()
                return
            self.last_started = time.monotonic()
        self.coalesced()

    def _run_from_timer(self):
        with self.lock:
            self.timer = None
            self.last_started = time.monotonic()
        try:
            self.coalesced()
        except Exception:
            logger.exception("queue positions broadcast failed")
        finally:
            connection.close()  # this thread's own connection (back to the pool)


# Broadcasts are spaced and coalesced, never skipped: under a burst of payments a process sends
# the queue at most every BROADCAST_SPACING_SECONDS (not once per payment), less often when they
# would take more than BROADCAST_SHARE of the time (but at least once per
# BROADCAST_SPACING_MAX_SECONDS while requests come); the latest place of every waiting client
# always goes out.
_queue_positions_spaced = _Spaced(
    _queue_positions_send,
    spacing=BROADCAST_SPACING_SECONDS,
    share=BROADCAST_SHARE,
    longest=BROADCAST_SPACING_MAX_SECONDS,
)


def _send_queue_positions():
    try:
        _queue_positions_spaced()
    except Exception:
        logger.exception("queue positions broadcast failed")


def back_to_matching(session, *, outcome, now, actor=None):
    """Precondition: session locked and offered. The offer ends; the session waits again at its
    old place in the queue and the queue is dispatched after commit."""
    check_transition(session, Status.MATCHING)
    mitra_id = session.mitra_id
    mitra_user_ids = user_ids_of_mitras([mitra_id])
    withdraw_pending_offer(session, outcome=outcome, now=now)
    session.status = Status.MATCHING
    session.mitra = None
    session.offered_at = None
    session.offer_expires_at = None
    session.save()
    record(session, f"offer_{outcome}", actor=actor, mitra_id=mitra_id)
    load_changed(mitra_id, -1)
    if session.is_booked and not session.allow_any_mitra:
        from sessions_app.booking_effects import booking_mitra_absent

        booking_mitra_absent(session, now=now)
    notify_updated(session, extra_user_ids=mitra_user_ids)
    dispatch_after_commit()
