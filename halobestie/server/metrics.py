"""Prometheus metrics, exposed by the internal listener at /metrics.

Increment them from the code that does the thing, e.g. `metrics.MESSAGES.inc()` after a message
is stored, `metrics.PAYMENTS.labels(status="paid").inc()` when a payment changes status. Never put
a user id, phone, session id or any unbounded value in a label.

Every metric of the project is defined here, and docs/metrics.md lists them all (a test checks
that the list and the registry agree; `make lint` checks that the alert rules and the dashboard
in deploy/monitoring/ use only these names).

Each process keeps its own counters (no prometheus multiprocess mode): the public and internal
listeners and the scheduler are separate processes. /metrics on the internal listener shows the
internal process's registry only; every other process exposes its own registry on METRICS_PORT
(bound to METRICS_HOST, never published) when that is set: `start_metrics_server()` does it, the
launcher calls it for the listeners. Prometheus scrapes every process; sums across replicas are
done in PromQL (DEPLOY.md § Metrics).
"""

import logging

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

logger = logging.getLogger(__name__)

# No `*_created` series beside every counter and histogram: they double the series and nothing
# here reads them (docs/metrics.md lists what is exported).
disable_created_metrics()

REQUESTS = Counter(
    "halobestie_http_requests_total",
    "HTTP requests answered, by listener, method and status class (2xx, 3xx, 4xx, 5xx).",
    ["listener", "method", "status_class"],
)
SOCKETS_OPEN = Gauge(
    "halobestie_websockets_open",
    "WebSocket connections accepted and not yet closed in this process.",
)
MESSAGES = Counter(
    "halobestie_chat_messages_total",
    "Chat messages stored (inc() once per message, after the commit).",
)
ASSIGNMENTS = Counter(
    "halobestie_session_assignments_total",
    "Sessions assigned to a mitra (direct choice or from the queue).",
)
PAYMENTS = Counter(
    "halobestie_payments_total",
    "Payment status changes, by the status reached (e.g. pending, paid, expired, failed).",
    ["status"],
)
VALKEY_FALLBACKS = Counter(
    "halobestie_valkey_fallbacks_total",
    "Valkey operations that failed and fell back to PostgreSQL (or were skipped).",
)
MIRROR_RESEEDS = Counter(
    "halobestie_mirror_reseeds_total",
    "Reseeds of the Valkey availability mirror from PostgreSQL.",
)
DRAINING = Gauge(
    "halobestie_draining",
    "1 while this process drains after SIGTERM (readiness answers 503).",
)

# Latency: buckets in seconds, chosen around each target (deploy/monitoring/rules.yml).
HTTP_REQUEST_DURATION = Histogram(
    "halobestie_http_request_duration_seconds",
    "Time to answer an HTTP request, by listener, method, route pattern (never the raw path; "
    "'<unmatched>' when no route matched) and status code.",
    ["listener", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGE_DELIVERY = Histogram(
    "halobestie_chat_message_delivery_seconds",
    "From a chat message's storing (its created_at) to its frame being written to a recipient's "
    "socket, measured by the process holding that socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_WAIT = Histogram(
    "halobestie_queue_wait_seconds",
    "From a paid session entering the queue to an offer to a mitra (each offer; after a decline "
    "the wait goes on from the same start).",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800),
)
OFFER_RESPONSE = Histogram(
    "halobestie_offer_response_seconds",
    "From an offer to the mitra's answer, by outcome (accepted, declined).",
    ["outcome"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120),
)
OFFER_OUTCOMES = Counter(
    "halobestie_offer_outcomes_total",
    "Offers ended, by outcome: accepted, declined, expired (no answer in the window), withdrawn "
    "(cancelled or the mitra deactivated).",
    ["outcome"],
)
MATCHING_OUTCOMES = Counter(
    "halobestie_matching_outcomes_total",
    "Paid sessions leaving the queue, by outcome: matched (a mitra accepted), unmatched (the "
    "matching window passed; refunded), cancelled (by the client or staff before a mitra accepted).",
    ["outcome"],
)
REFUNDS = Counter(
    "halobestie_refunds_total",
    "Refund events, by outcome: created, succeeded, failed (the gateway refused it), send_failed "
    "(sending to the gateway errored; retried by the scheduler).",
    ["outcome"],
)
PUSHES = Counter(
    "halobestie_pushes_total",
    "Pushes by outcome: sent / failed (per device), dropped (queue full), logged (log-only sender), "
    "pruned (dead tokens deleted).",
    ["outcome"],
)

# The scheduler (halobestie/scheduler_health.py serves these with its liveness probe).
SCHEDULER_LAST_TICK = Gauge(
    "halobestie_scheduler_last_tick_timestamp_seconds",
    "Unix time at which the scheduler last completed a tick (every job ran once); 0 in a process "
    "that never ran one.",
)
SCHEDULER_JOB_DURATION = Histogram(
    "halobestie_scheduler_job_duration_seconds",
    "Time one scheduler job took in one tick, by job.",
    ["job"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SCHEDULER_JOB_FAILURES = Counter(
    "halobestie_scheduler_job_failures_total",
    "Scheduler job runs that raised (logged; the other jobs still ran), by job.",
    ["job"],
)

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def status_class(status_code):
    return f"{int(status_code) // 100}xx"


def method_label(method):
    """The request method as a label: anything but the usual ones is `other` (bounded labels)."""
    return method if method in _METHODS else "other"


def route_label(request):
    """The route pattern that answered (e.g. `api/v1/sessions/<uuid:session_id>/accept`), never
    the raw path: ids in paths would make the label unbounded."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route or match.url_name == "not-found":  # the catch-all 404
        return "<unmatched>"
    return match.route


def request_observed(*, listener, method, status, seconds, request):
    """Count one answered HTTP request and its duration (the request middleware calls this)."""
    method = method_label(method)
    REQUESTS.labels(listener=listener, method=method, status_class=status_class(status)).inc()
    HTTP_REQUEST_DURATION.labels(
        listener=listener, method=method, route=route_label(request), status=str(status)
    ).observe(seconds)


_fast_children = {}


def fast_request_observed(*, listener, method, status, seconds, route):
    """`request_observed` for the fast routes (halobestie/server/fastpath.py): the same series,
    the label children kept so that a request costs two dictionary reads."""
    key = (listener, method, route, status)
    children = _fast_children.get(key)
    if children is None:
        label = method_label(method)
        children = (
            REQUESTS.labels(listener=listener, method=label, status_class=status_class(status)),
            HTTP_REQUEST_DURATION.labels(listener=listener, method=label, route=route, status=str(status)),
        )
        _fast_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


@require_GET
def metrics_view(request):
    """The Prometheus text exposition of this process's registry (internal listener only)."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def start_metrics_server():
    """Serve this process's registry on METRICS_HOST:METRICS_PORT (a thread), if METRICS_PORT is
    set; a no-op otherwise. Call once per process, at start-up."""
    if settings.METRICS_PORT:
        start_http_server(settings.METRICS_PORT, addr=settings.METRICS_HOST)
        logger.info("metrics listener", extra={"host": settings.METRICS_HOST, "port": settings.METRICS_PORT})
