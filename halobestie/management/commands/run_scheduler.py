"""`manage.py run_scheduler`: the long-running timer loop (see halobestie/scheduler.py)."""

import signal

from django.core.management.base import BaseCommand

from halobestie import scheduler
from halobestie.runtime.broadcast import start_listener
from halobestie.server import metrics
from mitras import mirror


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
        # Each process has its own counters: the scheduler serves them on METRICS_PORT.
        metrics.start_metrics_server()
        # The scheduler has no ASGI start-up: reseed the Valkey mirror here and after outages.
        mirror.start_background_checker()
        scheduler.run_forever(interval=interval, should_stop=lambda: stopping["now"])
