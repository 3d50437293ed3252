"""OpenAPI schema customisation for the apps' developers: operations tagged by area, the public
base URL as the server ("Try it out" calls the public listener), and the error envelope documented
per status each operation can answer (with `Retry-After` on 429 and 503)."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "detail"],
            "properties": {
                "code": {"type": "string", "description": "Stable snake_case error code."},
                "detail": {"type": "string", "description": "Human text, in Indonesian."},
                "fields": {
                    "type": "object",
                    "description": "Per-field messages for validation errors.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


class AutoSchema(SpectacularAutoSchema):
    """The project's schema class (hook for per-view tweaks)."""


# Areas, in the order the docs list them: (tag, description, path prefixes). A path no prefix
# matches is tagged by its first segment after /api/v1/ (tests/halobestie/test_docs.py asks that
# every tag be described here).
AREAS = (
    ("auth", "Login (OTP for clients, password for Besties), tokens, logout.", ("/api/v1/auth/",)),
    ("account", "The signed-in person's own account and push devices.", ("/api/v1/me", "/api/v1/devices")),
    ("bookings", "Booked sessions: a Bestie's bookable times, holding and paying one, moving, cancelling, "
     "and the choice when the Bestie does not come (rules: docs/payments.md).",
     ("/api/v1/bookings", "/api/v1/mitras/{mitra_id}/slots")),
    ("mitras", "Browsing Besties and whether anyone is available.",
     ("/api/v1/mitras", "/api/v1/availability")),
    ("mitra app", "The Bestie's own app: online status, heartbeat, earnings.", ("/api/v1/mitra/",)),
    ("sessions", "Booking, the session's life, messages, rating, reports.", ("/api/v1/sessions",)),
    ("payments", "Vouchers before paying, and Xendit's callbacks (server to server).",
     ("/api/v1/vouchers", "/webhooks/xendit/")),
    ("favourites", "A client's favourite Besties.", ("/api/v1/favourites",)),
    ("realtime", "Tickets for the WebSocket (protocol: docs/realtime.md).", ("/api/v1/realtime/",)),
    ("config", "Packages, prices and limits the apps show or enforce.", ("/api/v1/config",)),
)  # fmt: skip

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
# The error responses an operation documents, by status (`_statuses` says which apply).
ERROR_RESPONSES = {
    "400": "Invalid input: `validation_error` (per-field messages in `error.fields`), `parse_error` "
    "(malformed or hostile JSON), `bad_request`; or a refused action with its own code.",
    "401": "No valid access token: `not_authenticated`, `token_not_valid`, `token_revoked`, "
    "`user_inactive`, `account_deleted`, `mitra_deactivated`.",
    "403": "Signed in, but not allowed: `role_not_allowed` (another role's endpoint), `permission_denied`.",
    "404": "`not_found`: no such object, or not one of yours.",
    "409": "The current state does not allow this (`conflict` or the action's own code), or "
    "`database_conflict`: the request collided with another; send it again.",
    "429": "`rate_limited` or the limit's own code: wait `Retry-After` seconds.",
    "503": "`database_unavailable`, `database_timeout`, `service_unavailable`: try again after "
    "`Retry-After` seconds.",
}


def _area(path):
    for tag, _description, prefixes in AREAS:
        if path.startswith(prefixes):
            return tag
    return path.removeprefix("/api/v1/").strip("/").split("/")[0] or "api"


def _statuses(path, method, operation):
    security = operation.get("security") or [{}]
    signed_in = any("jwtAuth" in requirement for requirement in security)
    statuses = ["400"]
    if signed_in:
        statuses.append("401")
        if {} not in security:
            statuses.append("403")
    if "{" in path:
        statuses.append("404")
    if method != "get":
        statuses.append("409")
    return [*statuses, "429", "503"]


def add_error_envelope(result, generator, request, public):
    """Postprocessing hook: tags by area, the public server, and per operation the error
    responses it can give (plus `default`), each in the envelope."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    components["responses"] = {
        f"Error{status}": {
            "description": description,
            "content": content,
            **({"headers": RETRY_AFTER} if status in ("429", "503") else {}),
        }
        for status, description in ERROR_RESPONSES.items()
    }
    result["servers"] = [
        {"url": settings.PUBLIC_BASE_URL, "description": "The public API (PUBLIC_BASE_URL)."}
    ]
    used = set()
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["tags"] = [_area(path)]
            used.add(operation["tags"][0])
            responses = operation["responses"]
            for status in _statuses(path, method, operation):
                responses.setdefault(status, {"$ref": f"#/components/responses/Error{status}"})
            responses.setdefault("default", {"description": "Error", "content": content})
    described = [{"name": tag, "description": text} for tag, text, _prefixes in AREAS if tag in used]
    result["tags"] = described + [{"name": tag} for tag in sorted(used - {t for t, _d, _p in AREAS})]
    return result


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents our JWT authentication class as HTTP bearer auth."""

    target_class = "halobestie.accounts.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "Access token from login or refresh. Refused with 401 `token_not_valid` (expired, "
                "forged), `token_revoked` (logged out, or its login revoked after a refresh-token "
                "reuse), `user_inactive`, `account_deleted`, `mitra_deactivated`."
            ),
        }
