"""Timers: the scheduler's jobs on sessions (each due row in its own transaction, locked with
SKIP LOCKED and re-checked, so several scheduler replicas never fire one timer twice)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from mitras.selectors import last_heartbeats
from payments.services import refund_create
from promotions import services as promotions
from sessions_app import bookings, events, handoff, notifications, observations
from sessions_app.chat_store import messages_purge_expired
from sessions_app.effects import notify_updated, participant_user_ids, record
from sessions_app.lifecycle import end_active
from sessions_app.matching import back_to_matching, queue_dispatch
from sessions_app.models import (
    ChatSession,
    EndReason,
    OfferOutcome,
    Status,
)
from sessions_app.states import check_transition
from sessions_app.tickets import tickets_purge_expired


def _due(query, limit):
    return list(query.values_list("id", flat=True)[:limit])


def _for_each_locked(ids, condition, handle):
    """Lock each due row with SKIP LOCKED and re-check it is still due: several scheduler
    replicas never handle one timer twice, and a row changed meanwhile is left alone."""
    done = 0
    for session_id in ids:
        with transaction.atomic():
            session = (
                ChatSession.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=session_id, **condition)
                .first()
            )
            if session is None:
                continue
            handle(session)
            done += 1
    return done


def offers_expire_due(*, now=None, limit=200) -> int:
    """Offers past their window go back to matching for the next mitra."""
    now = now or timezone.now()
    condition = {"status": Status.OFFERED, "offer_expires_at__lte": now}
    return _for_each_locked(
        _due(ChatSession.objects.filter(**condition), limit),
        condition,
        lambda s: back_to_matching(s, outcome=OfferOutcome.EXPIRED, now=now),
    )


def matching_expire_due(*, now=None, limit=200) -> int:
    """Sessions that waited longer than the matching window end unmatched, with a refund."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=get_config().matching_timeout_seconds)
    # Our own clock from when the session entered the queue, never the gateway's paid_at: a late
    # or reconciled callback must still get the whole matching window.
    condition = {"status": Status.MATCHING, "matching_started_at__lte": cutoff}

    def handle(session):
        check_transition(session, Status.UNMATCHED)
        session.status = Status.UNMATCHED
        session.end_reason = EndReason.NO_MITRA
        session.ended_at = now
        session.save()
        record(session, "unmatched")
        observations.matching_ended(outcome="unmatched")
        refund_create(session=session, reason=EndReason.NO_MITRA, allow_nothing=True)
        promotions.redemptions_release_for_session(session=session, reason=EndReason.NO_MITRA, now=now)
        notify_updated(session)

    return _for_each_locked(_due(ChatSession.objects.filter(**condition), limit), condition, handle)


def sessions_warn_ending_soon(*, now=None, limit=200) -> int:
    now = now or timezone.now()
    lead = timedelta(seconds=get_config().ending_soon_lead_seconds)
    condition = {"status": Status.ACTIVE, "ends_at__lte": now + lead, "ending_soon_sent_at__isnull": True}

    def handle(session):
        session.ending_soon_sent_at = now
        session.save(update_fields=["ending_soon_sent_at", "updated_at"])
        record(session, "ending_soon")
        frame = {
            "type": "session.ending_soon",
            "session_id": str(session.id),
            "ends_at": session.ends_at.isoformat(),
            "seconds_left": max(0, int((session.ends_at - now).total_seconds())),
        }
        events.send_on_commit(participant_user_ids(session), frame)
        session_id = session.id

        def push():
            fresh = ChatSession.objects.filter(pk=session_id).first()
            if fresh is not None:
                notifications.ending_soon(session=fresh)

        transaction.on_commit(push)

    return _for_each_locked(_due(ChatSession.objects.filter(**condition), limit), condition, handle)


def sessions_end_due(*, now=None, limit=200) -> int:
    now = now or timezone.now()
    condition = {"status": Status.ACTIVE, "ends_at__lte": now}
    return _for_each_locked(
        _due(ChatSession.objects.filter(**condition), limit),
        condition,
        lambda s: end_active(s, reason=EndReason.EXPIRED, now=now),
    )


def sessions_check_mitra_presence(*, now=None, limit=200) -> int:
    """Active sessions whose mitra's presence lapsed (no fresh heartbeat: the app is gone, not
    merely switched to "no new offers"): both sides are told at once; back within the grace
    period, the session goes on; else it ends `mitra_lost`: the Bestie earns the minutes served
    until the presence lapsed, the client gets the rest back at once (settlement.py)."""
    now = now or timezone.now()
    config = get_config()
    grace = timedelta(seconds=config.mitra_lost_grace_seconds)
    ttl = config.heartbeat_ttl_seconds
    active = list(
        ChatSession.objects.filter(status=Status.ACTIVE).values_list("id", "mitra_id", "mitra_lost_at")[
            :limit
        ]
    )
    if not active:
        return 0
    mitras = list(Mitra.objects.filter(pk__in={m for _, m, _ in active}).only("id", "last_heartbeat_at"))
    beats = last_heartbeats(mitras)
    present = {m for m, beat in beats.items() if beat is not None and (now - beat).total_seconds() < ttl}

    def lapse(session):
        session.mitra_lost_at = now
        session.save(update_fields=["mitra_lost_at", "updated_at"])
        record(session, "mitra_lost")
        notify_updated(session)

    def back(session):
        session.mitra_lost_at = None
        session.save(update_fields=["mitra_lost_at", "updated_at"])
        record(session, "mitra_back")
        notify_updated(session)

    def give_up(session):
        end_active(session, reason=EndReason.MITRA_LOST, now=now)

    lapsed = [sid for sid, mitra_id, lost_at in active if lost_at is None and mitra_id not in present]
    returned = [sid for sid, mitra_id, lost_at in active if lost_at is not None and mitra_id in present]
    gone = [
        sid
        for sid, mitra_id, lost_at in active
        if lost_at is not None and lost_at <= now - grace and mitra_id not in present
    ]
    handled = _for_each_locked(lapsed, {"status": Status.ACTIVE, "mitra_lost_at__isnull": True}, lapse)
    handled += _for_each_locked(returned, {"status": Status.ACTIVE, "mitra_lost_at__isnull": False}, back)
    handled += _for_each_locked(gone, {"status": Status.ACTIVE, "mitra_lost_at__lte": now - grace}, give_up)
    return handled


def scheduler_jobs():
    """(name, job(now=…)) pairs for the project scheduler (halobestie/scheduler.py), in order."""
    return [
        # First: a crisis follow-up a dead process left pending (hotline, free minutes).
        ("crisis_followups", lambda now: handoff.crisis_followups_due(now=now)),
        ("messages_purge_expired", lambda now: messages_purge_expired(now=now)),
        ("tickets_purge_expired", lambda now: tickets_purge_expired(now=now)),
        ("offers_expire", offers_expire_due),
        ("matching_expire", matching_expire_due),
        ("ending_soon", sessions_warn_ending_soon),
        ("sessions_end", sessions_end_due),
        ("mitra_presence", sessions_check_mitra_presence),
        *bookings.scheduler_jobs(),
        ("queue_dispatch", lambda now: queue_dispatch(now=now)),
    ]
