"""`manage.py run_scheduler`: the long-running timer loop (see halobestie/scheduler.py)."""

import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from halobestie import scheduler, scheduler_health
from halobestie.runtime.broadcast import start_listener
from mitras import mirror

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the timers: offers, matching, ending soon, session end, presence, queue."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between ticks.")
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")

    def handle(self, *args, interval=1.0, once=False, **options):
        if once:
            scheduler.run_tick()
            return
        stopping = {"now": False}

        def stop(*_):
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        start_listener()
        # Each process has its own counters: the scheduler serves them on METRICS_PORT, with
        # its liveness probe (/healthz: the last tick is recent) beside them.
        if settings.METRICS_PORT:
            scheduler_health.start_server(
                host=settings.METRICS_HOST,
                port=settings.METRICS_PORT,
                stale_after=settings.SCHEDULER_STALE_SECONDS,
            )
        else:
            logger.warning("METRICS_PORT is 0: no liveness probe, no metrics")
        # The scheduler has no ASGI start-up: reseed the Valkey mirror here and after outages.
        mirror.start_background_checker()
        scheduler.run_forever(interval=interval, should_stop=lambda: stopping["now"])
