"""The timers. Every timer derives from database timestamps, so a restart loses nothing; each
job locks its rows with SKIP LOCKED, so several scheduler replicas never fire one timer twice.

Jobs run every tick in this order; a failing job is logged and the others still run.
"""

import logging
import time
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)


def _jobs():
    from sessions_app import services

    jobs = [
        *_extra_jobs(),
        ("offers_expire", services.offers_expire_due),
        ("matching_expire", services.matching_expire_due),
        ("ending_soon", services.sessions_warn_ending_soon),
        ("sessions_end", services.sessions_end_due),
        ("mitra_presence", services.sessions_check_mitra_presence),
        ("queue_dispatch", lambda now: services.queue_dispatch(now=now)),
    ]
    return jobs


HEARTBEAT_FLUSH_SECONDS = 10
_last_flush = {"at": 0.0}


def _flush_heartbeats(now):
    """Copy Valkey heartbeats to Postgres (forensics) every HEARTBEAT_FLUSH_SECONDS."""
    from mitras.services import mitras_flush_heartbeats

    if time.monotonic() - _last_flush["at"] < HEARTBEAT_FLUSH_SECONDS:
        return None
    _last_flush["at"] = time.monotonic()
    return mitras_flush_heartbeats()


def _extra_jobs():
    """Jobs of other apps (presence sweep, heartbeat flush, payments, retention)."""
    from halobestie.accounts.services import login_failures_purge, otp_challenges_purge
    from mitras.services import mitras_sweep_stale
    from payments.services import scheduler_jobs as payment_jobs
    from sessions_app import chat, handoff, tickets

    return [
        # First: a crisis follow-up a dead process left pending (hotline, free minutes).
        ("crisis_followups", lambda now: handoff.crisis_followups_due(now=now)),
        ("mitras_sweep_stale", lambda now: mitras_sweep_stale(now=now)),
        ("heartbeat_flush", _flush_heartbeats),
        ("messages_purge_expired", lambda now: chat.messages_purge_expired(now=now)),
        ("tickets_purge_expired", lambda now: tickets.tickets_purge_expired(now=now)),
        # OTP challenges hold phone numbers and serve the hourly limits only: kept two hours.
        ("otp_challenges_purge", lambda now: otp_challenges_purge(before=now - timedelta(hours=2))),
        ("login_failures_purge", lambda now: login_failures_purge(before=now - timedelta(days=1))),
        *payment_jobs(),
    ]


def run_tick(now=None) -> dict:
    """Run every job once. Returns {job: result} (failures are logged, not raised)."""
    now = now or timezone.now()
    results = {}
    for name, job in _jobs():
        try:
            results[name] = job(now=now)
        except Exception:
            logger.exception("scheduler job failed", extra={"job": name})
            results[name] = None
    return results


def run_forever(*, interval: float = 1.0, should_stop=lambda: False):
    logger.info("scheduler started", extra={"interval": interval})
    while not should_stop():
        started = time.monotonic()
        close_old_connections()
        run_tick()
        close_old_connections()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    logger.info("scheduler stopped")
