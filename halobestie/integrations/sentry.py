"""Error reporting through Sentry, on only when SENTRY_DSN is set (settings.py calls this).

Privacy: no personal data (send_default_pii=False: no cookies, user ids, IPs), no request bodies
(message texts and OTP codes travel in bodies), no local variables in stack frames (a frame of
the OTP or token code holds the secret), and headers and query strings pass through the same
redaction as the logs.
"""

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration

from halobestie.server.logging import REDACTED, redact

_SECRET_HEADERS = {"authorization", "cookie", "x-callback-token", "x-csrftoken", "sec-websocket-protocol"}


def scrub_event(event, hint=None):
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        if isinstance(request.get("query_string"), str):
            request["query_string"] = redact(request["query_string"])
        if isinstance(request.get("url"), str):
            request["url"] = redact(request["url"])
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                if name.lower() in _SECRET_HEADERS:
                    headers[name] = REDACTED
    for breadcrumb in (event.get("breadcrumbs") or {}).get("values", []):
        if isinstance(breadcrumb.get("message"), str):
            breadcrumb["message"] = redact(breadcrumb["message"])
    return event


def init_sentry(dsn, *, environment, traces_sample_rate=0.0):
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
    )
