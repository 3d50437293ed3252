"""The project's scheduler: one loop running every app's timers and housekeeping jobs.

Each app lists its jobs in a `scheduler_jobs()` function ((name, job(now=…)) pairs, in order);
this module gathers them (APP_JOBS, in this order) and runs them every tick. Every timer derives
from database timestamps, so a restart loses nothing; each job locks its rows with SKIP LOCKED,
so several scheduler replicas never fire one timer twice. A failing job is logged and the others
still run. `manage.py run_scheduler` (halobestie/management/commands) runs the loop.
"""

import logging
import time

from django.db import close_old_connections
from django.utils import timezone

from halobestie import scheduler_health
from halobestie.accounts import services as accounts
from mitras import services as mitras
from payments import services as payments
from promotions import services as promotions
from sessions_app import timers as sessions

logger = logging.getLogger(__name__)

# Mitras first (presence sweep, heartbeat flush), then accounts' and payments' housekeeping, then
# the session timers, whose last job dispatches the queue.
APP_JOBS = (
    mitras.scheduler_jobs,
    accounts.scheduler_jobs,
    payments.scheduler_jobs,
    promotions.scheduler_jobs,
    sessions.scheduler_jobs,
)


def _jobs():
    return [job for app_jobs in APP_JOBS for job in app_jobs()]


def run_tick(now=None) -> dict:
    """Run every job once. Returns {job: result} (failures are logged, not raised)."""
    now = now or timezone.now()
    results = {}
    for name, job in _jobs():
        try:
            with scheduler_health.job_observed(name):
                results[name] = job(now=now)
        except Exception:
            logger.exception("scheduler job failed", extra={"job": name})
            results[name] = None
    scheduler_health.tick_completed()
    return results


def run_forever(*, interval: float = 1.0, should_stop=lambda: False):
    logger.info("scheduler started", extra={"interval": interval})
    scheduler_health.loop_started()
    while not should_stop():
        started = time.monotonic()
        close_old_connections()
        run_tick()
        close_old_connections()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    logger.info("scheduler stopped")
