"""A small client for the Xendit Invoice and Refund APIs, over `requests`.

Basic auth with the secret key as the user and an empty password; every call is bounded by
XENDIT_TIMEOUT_SECONDS. Any gateway failure raises a `XenditError`, which is a ServiceError: an
API view that lets it through answers 503 (`payment_gateway_unavailable`: timeout, connection
refused) or 502 (`payment_gateway_error`: 5xx, a refusal, an answer we cannot read). The secret
key and the bodies' personal data never reach the logs.
"""

import logging

import requests
from django.conf import settings

from halobestie.errors import BadGateway, ServiceUnavailable

logger = logging.getLogger(__name__)

CURRENCY = "IDR"


class XenditError(Exception):
    """Marker for every gateway failure (the concrete classes below are ServiceErrors)."""


class XenditUnavailable(XenditError, ServiceUnavailable):
    code = "payment_gateway_unavailable"
    detail = "Layanan pembayaran sedang tidak dapat dihubungi. Coba lagi sebentar lagi."


class XenditBadResponse(XenditError, BadGateway):
    code = "payment_gateway_error"
    detail = "Layanan pembayaran sedang bermasalah. Coba lagi sebentar lagi."

    def __init__(self, detail=None, *, upstream_status=None, upstream_code=None):
        super().__init__(detail)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code


def _timeout():
    seconds = settings.XENDIT_TIMEOUT_SECONDS
    return (min(seconds, 5.0), seconds)


def _request(method, path, *, json=None, headers=None) -> dict:
    url = f"{settings.XENDIT_API_URL}{path}"
    try:
        response = requests.request(
            method,
            url,
            json=json,
            headers={"Accept": "application/json", **(headers or {})},
            auth=(settings.XENDIT_SECRET_KEY, ""),
            timeout=_timeout(),
        )
    except requests.Timeout:
        logger.warning("xendit timeout", extra={"method": method, "path": path})
        raise XenditUnavailable()
    except requests.RequestException as error:
        logger.warning(
            "xendit unreachable", extra={"method": method, "path": path, "error": type(error).__name__}
        )
        raise XenditUnavailable()
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400 or not isinstance(data, dict):
        upstream_code = data.get("error_code") if isinstance(data, dict) else None
        logger.warning(
            "xendit refused or answered garbage",
            extra={
                "method": method,
                "path": path,
                "status": response.status_code,
                "error_code": upstream_code,
            },
        )
        raise XenditBadResponse(upstream_status=response.status_code, upstream_code=upstream_code)
    return data


def invoice_create(*, external_id: str, amount_idr: int, description: str, duration_seconds: int) -> dict:
    """POST /v2/invoices/ → the invoice (id, invoice_url, status, expiry_date, …)."""
    return _request(
        "POST",
        "/v2/invoices/",
        json={
            "external_id": external_id,
            "amount": amount_idr,
            "description": description,
            "invoice_duration": duration_seconds,
            "currency": CURRENCY,
            "success_redirect_url": settings.XENDIT_SUCCESS_REDIRECT_URL,
            "failure_redirect_url": settings.XENDIT_FAILURE_REDIRECT_URL,
        },
    )


def invoice_get(invoice_id: str) -> dict:
    return _request("GET", f"/v2/invoices/{invoice_id}")


def invoice_expire(invoice_id: str) -> dict:
    return _request("POST", f"/invoices/{invoice_id}/expire!")


def refund_create(
    *, idempotency_key: str, invoice_id: str, amount_idr: int, reason: str, reference_id: str, metadata=None
) -> dict:
    """POST /refunds with `idempotency-key`: a resend with the same key never refunds twice."""
    return _request(
        "POST",
        "/refunds",
        headers={"idempotency-key": idempotency_key},
        json={
            "invoice_id": invoice_id,
            "reference_id": reference_id,
            "amount": amount_idr,
            "currency": CURRENCY,
            "reason": reason,
            "metadata": metadata or {},
        },
    )
