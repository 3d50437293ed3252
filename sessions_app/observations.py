"""What the session services measure (halobestie/server/metrics.py, docs/metrics.md): queue wait, offer
outcomes and response time, matching outcomes, chat message counts and delivery time.

The services call these at the point of the decision, with the session locked; counters move
only after commit, so a rolled-back decision is never counted.
"""

import time
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from halobestie.server import metrics


def offer_made(session, *, now):
    """Precondition: `session` was just offered (locked). Counts the assignment and the time the
    session waited in the queue since payment."""
    waited = _seconds_between(session.matching_started_at, now)

    def observe():
        metrics.ASSIGNMENTS.inc()
        if waited is not None:
            metrics.QUEUE_WAIT.observe(waited)

    transaction.on_commit(observe)


def offer_ended(session, *, outcome, now):
    """Precondition: `session` is locked and still offered. `outcome`: accepted, declined,
    expired or withdrawn. An accepted offer also ends matching (`matched`)."""
    outcome = str(outcome)
    answered = _seconds_between(session.offered_at, now) if outcome in ("accepted", "declined") else None

    def observe():
        metrics.OFFER_OUTCOMES.labels(outcome=outcome).inc()
        if answered is not None:
            metrics.OFFER_RESPONSE.labels(outcome=outcome).observe(answered)
        if outcome == "accepted":
            metrics.MATCHING_OUTCOMES.labels(outcome="matched").inc()

    transaction.on_commit(observe)


def matching_ended(*, outcome):
    """A paid session left the queue without a mitra: `unmatched` or `cancelled`."""
    transaction.on_commit(lambda: metrics.MATCHING_OUTCOMES.labels(outcome=outcome).inc())


def message_stored(stored):
    """After a chat message's commit (message_send returns only then); resends are not counted."""
    if not stored.is_duplicate:
        metrics.MESSAGES.inc()


def frame_delivered(frame, *, recipient_user_id):
    """A frame was written to a socket: for a message from someone else, observe the time since
    it was stored. The sender's own echo is not a delivery."""
    if frame.get("type") != "message.new" or frame.get("sender_id") == recipient_user_id:
        return
    stored_at = parse_datetime(frame.get("created_at") or "")
    waited = _seconds_between(stored_at, timezone.now())
    if waited is not None:
        metrics.MESSAGE_DELIVERY.observe(max(0.0, waited))


def message_delivered(*, sender_id, stored_at, recipient_user_id):
    """frame_delivered for a chat message sent pre-serialised: `stored_at` in epoch seconds."""
    if sender_id == recipient_user_id or stored_at is None:
        return
    metrics.MESSAGE_DELIVERY.observe(max(0.0, time.time() - stored_at))


def _seconds_between(start: datetime | None, end: datetime):
    return None if start is None else (end - start).total_seconds()
