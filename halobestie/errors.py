"""The one error envelope of the API: `{"error": {"code", "detail", "fields"?}}`.

Services raise `ServiceError` subclasses (they know nothing of HTTP but carry a status hint);
DRF exceptions, Django's 404/500 and validation errors are all rendered through here, so the apps
only ever parse one shape.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from halobestie.server.async_capable import AsyncCapableMiddleware

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


class DatabaseConflict(Conflict):
    """A deadlock or a serialization failure: the transaction was rolled back whole, so the same
    request may simply be sent again."""

    code = "database_conflict"
    detail = "Permintaan bertabrakan dengan permintaan lain. Coba lagi."


class DatabaseTimeout(ServiceUnavailable):
    """A lock wait or a statement ran past its timeout (DATABASE_LOCK_TIMEOUT_MS,
    DATABASE_STATEMENT_TIMEOUT_MS): the database is up but busy with this row."""

    code = "database_timeout"
    detail = "Data ini sedang sibuk diproses. Coba lagi sebentar lagi."


class BadInput(ServiceError):
    code = "bad_request"
    detail = "Permintaan berisi data yang tidak dapat disimpan."


# PostgreSQL unreachable, restarting, or the connection pool exhausted (psycopg_pool's
# PoolTimeout reaches us as Django's OperationalError): the client may retry, so 503, not 500.
DATABASE_ERRORS = (OperationalError, InterfaceError, DataError)
DATABASE_RETRY_AFTER_SECONDS = 5
# SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) that are not an
# outage: each has its own answer.
_CONFLICT_STATES = {"40P01": "deadlock", "40001": "serialization_failure"}
_TIMEOUT_STATES = {"55P03": "lock_timeout", "57014": "statement_timeout"}
# Connection-level: class 08, the server shutting down or starting, too many connections.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}


def _sqlstate(exc):
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)


def database_error_as_service_error(exc) -> ServiceError | None:
    """The answer to a database exception, or None when it is not one we answer (a 500 then).
    Logs one line with the exception's class, SQLSTATE and primary message: never the statement,
    its parameters or a body, so an operator can tell a lock from an outage."""
    cause = exc.__cause__ or exc
    sqlstate = _sqlstate(exc)
    primary = getattr(getattr(cause, "diag", None), "message_primary", None)
    extra = {"error": type(cause).__name__, "sqlstate": sqlstate}
    if isinstance(exc, DataError):
        # The last net: input that should have been refused at the boundary (halobestie.server.safe_input).
        logger.warning("database refused a value", extra={**extra, "db_message": primary})
        return BadInput()
    if not isinstance(exc, OperationalError | InterfaceError):
        return None
    if sqlstate in _CONFLICT_STATES:
        logger.warning(
            "database conflict", extra={**extra, "db_message": primary, "kind": _CONFLICT_STATES[sqlstate]}
        )
        return DatabaseConflict()
    if sqlstate in _TIMEOUT_STATES:
        logger.warning(
            "database timeout", extra={**extra, "db_message": primary, "kind": _TIMEOUT_STATES[sqlstate]}
        )
        return DatabaseTimeout(headers={"Retry-After": "1"})
    if (
        isinstance(exc, InterfaceError)
        or sqlstate is None
        or sqlstate.startswith("08")
        or sqlstate in _UNAVAILABLE_STATES
    ):
        # No SQLSTATE: the connection itself failed (refused, reset, pool timeout). The
        # message of a connection error names host and port only.
        logger.warning(
            "database unavailable", extra={**extra, "db_message": primary or str(cause).split("\n")[0][:200]}
        )
        return DatabaseUnavailable(headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    logger.error("database error", extra={**extra, "db_message": primary})
    return None


def service_error_response(exc, response_class):
    """A ServiceError in the envelope, built with DRF's Response or Django's JsonResponse."""
    response = response_class(envelope(exc.code, exc.detail, exc.fields), status=exc.status_code)
    for name, value in exc.headers.items():
        response[name] = value
    if isinstance(exc, DatabaseConflict):
        response.is_database_conflict = True
    return response


def database_unavailable_response(response_class):
    """A 503 `database_unavailable` in the envelope, built with `response_class` (DRF's
    Response or Django's JsonResponse)."""
    return service_error_response(
        DatabaseUnavailable(headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}), response_class
    )


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
        return service_error_response(exc, Response)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            envelope("payload_too_large", "Isi permintaan terlalu besar."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DATABASE_ERRORS):
        answer = database_error_as_service_error(exc)
        return service_error_response(answer, Response) if answer is not None else None
    if isinstance(exc, exceptions.Throttled):
        return service_error_response(TooManyRequests(retry_after=exc.wait or 1), Response)
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


class DatabaseUnavailableMiddleware(AsyncCapableMiddleware):
    """Outside DRF views (payment pages, the admin): a database error answers in the envelope
    (503 `database_unavailable`, 409 `database_conflict`, 503 `database_timeout`, 400) instead of
    the 500 page. (Django's handler500 cannot see the exception under ASGI, so this is a
    middleware's process_exception.) A read (GET/HEAD) that lost a deadlock or a serialization
    failure is run once more: its transaction was rolled back whole and it changes nothing."""

    @staticmethod
    def is_retried(request, response):
        if getattr(response, "is_database_conflict", False) and request.method in ("GET", "HEAD"):
            logger.info("database conflict on a read: retried once")
            return True
        return False

    def handle(self, request):
        response = self.get_response(request)
        return self.get_response(request) if self.is_retried(request, response) else response

    async def __acall__(self, request):
        response = await self.get_response(request)
        return await self.get_response(request) if self.is_retried(request, response) else response

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            answer = database_error_as_service_error(exception)
            return service_error_response(answer, JsonResponse) if answer is not None else None
        return None


def handler500(request):
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        answer = database_error_as_service_error(exc)
        if answer is not None:
            return service_error_response(answer, JsonResponse)
    return JsonResponse(
        envelope("server_error", "Terjadi kesalahan di server. Tim kami sudah diberi tahu."),
        status=500,
    )
