"""ASGI lifespan: start-up and shutdown hooks of a server process.

Apps register hooks with `on_startup` / `on_shutdown` (async callables taking the listener name);
the ASGI servers (uvicorn, daphne) drive them through the lifespan protocol.

With SCHEDULER_IN_PROCESS (the embedded default: no VALKEY_URL) the public listener also runs
the timers (`InProcessScheduler`): one event loop and one in-memory channel layer, so the events
the scheduler sends (offers, re-offers, queue positions, ending soon, ended at time) reach the
sockets of this process, the only process there is.
"""

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from asgiref.sync import sync_to_async

logger = logging.getLogger(__name__)

_startup_hooks = []
_shutdown_hooks = []


def on_startup(hook):
    _startup_hooks.append(hook)
    return hook


def on_shutdown(hook):
    _shutdown_hooks.append(hook)
    return hook


_scheduler_tick = {"run": None}


def register_scheduler_tick(run_tick):
    """The project scheduler's `run_tick` (registered by the halobestie app: this plumbing must
    not import the apps the scheduler runs)."""
    _scheduler_tick["run"] = run_tick


def _tick_with_fresh_connections(run_tick):
    """One scheduler tick on the scheduler's own thread, with fresh connections as a request has."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        run_tick()
    finally:
        close_old_connections()


class InProcessScheduler:
    """The scheduler loop as an asyncio task: each tick runs the synchronous jobs on one
    dedicated thread (so the event loop keeps serving), then the task sleeps out the interval.
    Events the jobs send go through `sessions_app.events` to this loop's channel layer."""

    def __init__(self, run_tick, *, interval: float = 1.0):
        self.interval = interval
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler")
        self._tick = sync_to_async(
            partial(_tick_with_fresh_connections, run_tick), thread_sensitive=False, executor=self._executor
        )
        self._stopping = asyncio.Event()
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")
        logger.info("scheduler started in process", extra={"interval": self.interval})

    async def _run(self):
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self._tick()
            except Exception:  # run_tick logs its jobs' failures; this is the tick itself
                logger.exception("scheduler tick failed")
            remaining = self.interval - (time.monotonic() - started)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=remaining)

    async def stop(self, *, timeout: float = 30.0):
        """Let the running tick finish (a job is never cut off mid-transaction), then stop."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
            except TimeoutError:
                logger.warning("scheduler tick still running at shutdown")
        self._executor.shutdown(wait=False)
        logger.info("scheduler stopped")


class LifespanApp:
    def __init__(self, app, *, listener):
        self.app = app
        self.listener = listener
        self.scheduler = None

    def _runs_scheduler(self):
        from django.conf import settings

        registered = _scheduler_tick["run"] is not None
        return self.listener == "public" and settings.SCHEDULER_IN_PROCESS and registered

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in _startup_hooks:
                        await hook(self.listener)
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self._runs_scheduler():
                    self.scheduler = InProcessScheduler(_scheduler_tick["run"])
                    self.scheduler.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.scheduler is not None:
                    await self.scheduler.stop()
                    self.scheduler = None
                for hook in _shutdown_hooks:
                    try:
                        await hook(self.listener)
                    except Exception:
                        logger.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return
