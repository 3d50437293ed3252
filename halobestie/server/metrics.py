"""Prometheus metrics, exposed by the internal listener at /metrics.

Increment them from the code that does the thing, e.g. `metrics.MESSAGES.inc()` after a message
is stored, `metrics.PAYMENTS.labels(status="paid").inc()` when a payment changes status. Never put
a user id, phone, session id or any unbounded value in a label.

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
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest, start_http_server

logger = logging.getLogger(__name__)

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


def status_class(status_code):
    return f"{int(status_code) // 100}xx"


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
