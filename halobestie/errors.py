"""The one error envelope of the API: `{"error": {"code", "detail", "fields"?}}`.

Services raise `ServiceError` subclasses (they know nothing of HTTP but carry a status hint);
DRF exceptions, Django's 404/500 and validation errors are all rendered through here, so the apps
only ever parse one shape.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A refused state change. `code` is the stable snake_case code the apps switch on."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    detail = "Permintaan tidak dapat diproses."

    def __init__(self, detail=None, *, code=None, status_code=None, fields=None, headers=None):
        self.detail = detail or self.detail
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.detail)


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    detail = "Tidak ditemukan."


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    detail = "Keadaan saat ini tidak mengizinkan tindakan ini."


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    detail = "Anda tidak memiliki izin untuk tindakan ini."


class TooManyRequests(ServiceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "rate_limited"
    detail = "Terlalu banyak permintaan. Coba lagi nanti."

    def __init__(self, detail=None, *, retry_after: int, code=None):
        super().__init__(detail, code=code, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


class ServiceUnavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"
    detail = "Layanan sedang tidak tersedia. Coba lagi sebentar lagi."


class BadGateway(ServiceError):
    status_code = status.HTTP_502_BAD_GATEWAY
    code = "bad_gateway"
    detail = "Layanan mitra pembayaran memberi jawaban yang tidak dikenal."


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    detail = "Layanan sedang tidak tersedia. Coba lagi sebentar lagi."


# PostgreSQL unreachable, restarting, or the connection pool exhausted (psycopg_pool's
# PoolTimeout reaches us as Django's OperationalError): the client may retry, so 503, not 500.
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_SECONDS = 5


def database_unavailable_response(response_class):
    """A 503 `database_unavailable` in the envelope, built with `response_class` (DRF's
    Response or Django's JsonResponse)."""
    response = response_class(
        envelope(DatabaseUnavailable.code, DatabaseUnavailable.detail),
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
    )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def envelope(code, detail, fields=None):
    body = {"error": {"code": code, "detail": str(detail)}}
    if fields:
        body["error"]["fields"] = fields
    return body


def _flatten_fields(data):
    """DRF validation details → {field: [messages]} with nested fields joined by dots."""
    fields = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}" if prefix else str(index), inner)
        elif isinstance(value, list):
            fields[prefix or "non_field_errors"] = [str(v) for v in value]
        else:
            fields[prefix or "non_field_errors"] = [str(value)]

    walk("", data)
    return fields


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every API error leaves in the envelope."""
    if isinstance(exc, ServiceError):
        response = Response(envelope(exc.code, exc.detail, exc.fields), status=exc.status_code)
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            envelope("payload_too_large", "Isi permintaan terlalu besar."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DATABASE_ERRORS):
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        return database_unavailable_response(Response)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        # An unexpected exception: let Django log it and answer through handler500.
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = envelope(
            "validation_error", "Data yang dikirim tidak valid.", _flatten_fields(exc.detail)
        )
        return response
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if isinstance(detail, dict) and "detail" in detail and "code" in detail:
        # simplejwt's errors carry {"detail", "code", "messages"?}: keep its code.
        response.data = envelope(str(detail["code"]), detail["detail"])
        return response
    if isinstance(detail, (list, dict)):
        response.data = envelope("bad_request", "Permintaan tidak valid.", _flatten_fields(detail))
        return response
    if not isinstance(code, str):
        code = "error"
    response.data = envelope(code, detail)
    return response


# Django-level handlers (paths outside DRF views, and errors before a view runs) -----------------


def handler400(request, exception=None):
    return JsonResponse(envelope("bad_request", "Permintaan tidak valid."), status=400)


def handler403(request, exception=None):
    return JsonResponse(envelope("permission_denied", "Akses ditolak."), status=403)


@csrf_exempt  # also the public catch-all: an unknown POST is a 404, not a CSRF failure
def handler404(request, exception=None):
    return JsonResponse(envelope("not_found", "Tidak ditemukan."), status=404)


class DatabaseUnavailableMiddleware:
    """Outside DRF views (payment pages, the admin): a database outage answers 503 in the
    envelope instead of the 500 page. (Django's handler500 cannot see the exception under
    ASGI, so this is a middleware's process_exception.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("database unavailable", extra={"error": type(exception).__name__})
            return database_unavailable_response(JsonResponse)
        return None


def handler500(request):
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return database_unavailable_response(JsonResponse)
    return JsonResponse(
        envelope("server_error", "Terjadi kesalahan di server. Tim kami sudah diberi tahu."),
        status=500,
    )
