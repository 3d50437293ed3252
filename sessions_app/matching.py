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
dispatches requested after commit while one is running are coalesced into one more run.

After a dispatch, the queue broadcast (`queue.position` to every waiting client, and the due
`session.updated` of sessions just paid, `notify_paid`) is coalesced and spaced per process: one
at a time, at most one every BROADCAST_SPACING_SECONDS, never dropped, from one queue estimate
(wait_inputs.queue_now) — under a burst of payments, not one estimate and one broadcast each.

What bounds it: one dispatch costs a fixed handful of queries plus about five statements per offer
(session, offer, event, the Bestie's load and last assignment), all in one transaction, so
placements per second are bounded by Postgres round trips per offer (≈ 1–2 ms each on the bench
machine), not by a lock; dispatchers that want the same Besties at the same moment share them
(one gets a Bestie, the other the rest or its retry), so with very few free Besties concurrent
dispatchers effectively take turns. Order is first in first out within a dispatch and across
dispatchers up to the rows another dispatcher holds at that moment.
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Prefetch
from django.utils import timezone

from halobestie.runtime.selectors import get_config
from mitras.favourites import favourite_ids_by_client
from mitras.models import Mitra
from mitras.rest import mitras_ready_for_offers
from mitras.schedule import with_working_now
from mitras.selectors import last_heartbeats
from payments.models import Payment
from sessions_app import blocking, events, notifications, observations, preferences, wait_inputs
from sessions_app.booking_slots import next_booking_starts
from sessions_app.effects import (
    load_changed,
    notify_updated,
    participant_user_ids,
    record,
    user_ids_of_mitras,
)
from sessions_app.models import (
    ChatSession,
    OfferOutcome,
    SessionOffer,
    Status,
)
from sessions_app.serializers import session_payload
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
    if queue_dispatch().contended:
        queue_dispatch(wait_for_locks=True)
    if _paid_updates:  # the dispatch had nothing to broadcast: the paid sessions' updates still go
        _send_queue_positions()


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
        free = Mitra.objects.filter(is_online=True, deactivated_at__isnull=True, load__lt=F("capacity"))
        mitras = list(
            with_working_now(
                free.select_for_update(skip_locked=not wait_for_locks, of=("self",)), now=now
            ).order_by("id")
        )
        # Present = toggled online and heartbeat fresh (Valkey, else Postgres); the sweeper
        # switches stale mitras offline later, but they get no offers meanwhile.
        beats = last_heartbeats(mitras)
        ttl = config.heartbeat_ttl_seconds
        mitras = [m for m in mitras if beats[m.id] is not None and (now - beats[m.id]).total_seconds() < ttl]
        mitras = mitras_ready_for_offers(mitras, now=now)  # resting Besties get no offers (mitras/rest.py)
        loads = {m.id: m.load for m in mitras}  # read from the locked rows
        candidates = {m.id: m for m in mitras if loads.get(m.id, 0) < m.capacity}
        refused = set(
            SessionOffer.objects.filter(session__in=waiting)
            .exclude(outcome__in=[OfferOutcome.PENDING, OfferOutcome.ACCEPTED])
            .values_list("session_id", "mitra_id")
        )
        refused |= blocking.blocked_pairs(waiting)  # a blocked pair is never offered (issue 20)
        favourites = favourite_ids_by_client({session.client_id for session in waiting})
        booked_from = next_booking_starts(mitra_ids=list(candidates), now=now)  # issue 25
        unplaced = 0
        announced = {}  # session id → the Bestie's user id, announced together after commit
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
            _offer(session, mitra, now=now, timeout=config.offer_timeout_seconds, announce=False)
            offered.append(session.id)
            announced[session.id] = mitra.user_id
            loads[mitra.id] = loads.get(mitra.id, 0) + 1
            if loads[mitra.id] >= mitra.capacity:
                del candidates[mitra.id]
        if not wait_for_locks:
            # Skipped rows another dispatcher holds: a free Bestie while sessions wait here, or a
            # waiting session while Besties are still free here.
            offered.contended = bool(
                (unplaced and free.exclude(id__in=list(beats)).exists())
                or (
                    candidates
                    and ChatSession.objects.filter(status=Status.MATCHING)
                    .exclude(id__in=[session.id for session in waiting])
                    .exists()
                )
            )
        if announced:
            transaction.on_commit(lambda: _announce_offers(announced))
        if offered or waiting:
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


def _offer(session, mitra, *, now, timeout, announce=True):
    """Precondition: session locked and matching, mitra locked with a free slot. After commit
    the Bestie gets `session.offer`, the client `session.updated` (unless `announce` is false:
    the caller announces its offers together, `_announce_offers`)."""
    check_transition(session, Status.OFFERED)
    session.status = Status.OFFERED
    session.mitra = mitra
    session.offered_at = now
    session.offer_expires_at = now + timedelta(seconds=timeout)
    session.save()
    SessionOffer.objects.create(
        session=session, mitra=mitra, offered_at=now, expires_at=session.offer_expires_at
    )
    Mitra.objects.filter(pk=mitra.pk).update(last_assigned_at=now)
    mitra.last_assigned_at = now
    record(session, "offered", mitra_id=mitra.id)
    load_changed(mitra.id, +1)
    observations.offer_made(session, now=now)
    if announce:
        offers = {session.id: mitra.user_id}
        transaction.on_commit(lambda: _announce_offers(offers))


def _announce_offers(offers):
    """After commit: each offer still pending ({session id: the Bestie's user id}) to its Bestie
    (`session.offer`, and a push) and to its client (`session.updated`)."""
    for fresh in _sessions_fresh(offers):
        mitra_user_id = offers[fresh.id]
        still_offered = fresh.status == Status.OFFERED and fresh.mitra is not None
        if still_offered and fresh.mitra.user_id == mitra_user_id:
            payload = session_payload(fresh)
            events.send_now([mitra_user_id], {"type": "session.offer", "session": payload})
            events.send_now([fresh.client_id], {"type": "session.updated", "session": payload})
            notifications.offer_made(session=fresh, mitra_user_id=mitra_user_id)


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


def _send_paid_updates(updates, queue):
    """`session.updated` for the paid sessions still waiting, their place and estimate from
    `queue` (one that has left the queue since sent its own `session.updated` when it left: an
    offer, a cancellation)."""
    for fresh in _sessions_fresh(updates):
        place = queue.by_session_id.get(fresh.id)
        if fresh.status == Status.MATCHING and place is not None:
            fresh.queue_ahead = place.position - 1
            payload = session_payload(fresh)
            events.send_now(updates[fresh.id], {"type": "session.updated", "session": payload})


def _queue_positions_send():
    """The due `session.updated` of paid sessions, then `queue.position` (place and
    `eta_seconds`) to every waiting client, all from the queue as committed when the broadcast
    starts (wait_inputs.queue_now)."""
    updates = _take_paid_updates()
    queue = wait_inputs.queue_now()
    with wait_inputs.estimates_from(queue):
        _send_paid_updates(updates, queue)
    events.send_many(
        (
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
        ),
        line="queue.position",
    )


BROADCAST_SPACING_SECONDS = 0.25


class _Spaced:
    """Run `job` at most once per `spacing` seconds per process, one run at a time, never a
    request dropped: a request within `spacing` of the last run's start is served by one timer at
    the end of the spacing (however many requests come meanwhile), whose run starts after them
    and so sees their commits; a request while a run goes on gets one more run after it
    (_Coalesced)."""

    def __init__(self, job, *, spacing):
        self.coalesced = _Coalesced(job)
        self.spacing = spacing
        self.lock = threading.Lock()
        self.last_started = float("-inf")
        self.timer = None

    def __call__(self):
        with self.lock:
            if self.timer is not None:
                return  # the timer's run comes after this request
            wait = self.last_started + self.spacing - time.monotonic()
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
# the queue at most every BROADCAST_SPACING_SECONDS (not once per payment), and the latest place
# of every waiting client always goes out.
_queue_positions_spaced = _Spaced(_queue_positions_send, spacing=BROADCAST_SPACING_SECONDS)


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
