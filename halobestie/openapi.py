"""OpenAPI schema customisation: the error envelope as a component on every operation."""

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


def add_error_envelope(result, generator, request, public):
    """Postprocessing hook: every operation documents the envelope as its `default` response."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ERROR_ENVELOPE
    reference = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["responses"].setdefault(
                "default",
                {"description": "Error", "content": {"application/json": {"schema": reference}}},
            )
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
