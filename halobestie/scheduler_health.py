"""Scheduler liveness: is the timer loop still turning?

A stalled scheduler is silent: sessions never end, offers never expire, payments never
reconcile, and every listener still answers its probes. So the scheduler process serves its own
small HTTP endpoint on METRICS_HOST:METRICS_PORT:
- `/healthz`: 200 while the last completed tick is at most SCHEDULER_STALE_SECONDS old, else 503
  (a job hanging on a lock or a dead database connection, a loop that stopped turning). Before
  the first tick the age counts from the start of the loop. Kubernetes' livenessProbe restarts
  the pod on it (deploy/k8s/scheduler.yaml), compose marks the container unhealthy.
- `/metrics`: this process's Prometheus registry, including the last-tick timestamp and each
  job's duration and failures (halobestie/server/metrics.py), which the `HalobestieSchedulerStalled`
  alert reads (deploy/monitoring/).

The loop reports through two calls: `job_observed(name)` around each job and `tick_completed()`
after each tick.
"""

import json
import logging
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from halobestie.server import metrics

logger = logging.getLogger(__name__)

# Monotonic clock: a wall-clock jump must not make the scheduler look stalled (or alive).
_state = {"loop_started": time.monotonic(), "last_tick": None}


@contextmanager
def job_observed(name):
    """Time one job run and count it as failed if it raises (the exception goes on)."""
    started = time.monotonic()
    try:
        yield
    except Exception:
        metrics.SCHEDULER_JOB_FAILURES.labels(job=name).inc()
        raise
    finally:
        metrics.SCHEDULER_JOB_DURATION.labels(job=name).observe(time.monotonic() - started)


def tick_completed():
    _state["last_tick"] = time.monotonic()
    metrics.SCHEDULER_LAST_TICK.set_to_current_time()


def loop_started():
    """The loop starts now: the age before its first tick counts from here."""
    _state["loop_started"] = time.monotonic()
    _state["last_tick"] = None


def seconds_since_last_tick() -> float:
    reference = _state["last_tick"] if _state["last_tick"] is not None else _state["loop_started"]
    return time.monotonic() - reference


def liveness(stale_after: float) -> tuple[int, dict]:
    """(HTTP status, body) of the liveness probe."""
    age = round(seconds_since_last_tick(), 3)
    if age > stale_after:
        return 503, {"status": "stalled", "seconds_since_last_tick": age, "stale_after_seconds": stale_after}
    return 200, {"status": "ok", "seconds_since_last_tick": age}


def start_server(*, host: str, port: int, stale_after: float) -> ThreadingHTTPServer:
    """Serve /healthz and /metrics on host:port from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                status, body = liveness(stale_after)
                self._answer(status, "application/json", json.dumps(body).encode())
            elif path == "/metrics":
                self._answer(200, CONTENT_TYPE_LATEST, generate_latest())
            else:
                self._answer(404, "application/json", b'{"status": "not_found"}')

        def _answer(self, status, content_type, payload):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):
            pass  # probes every few seconds: no log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="scheduler-health", daemon=True).start()
    logger.info("scheduler health listener", extra={"host": host, "port": port, "stale_after": stale_after})
    return server
