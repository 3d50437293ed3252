"""REST authentication by an old backend's access token during the cutover window (tokens.py).
Listed before our JWTAuthentication: it answers only for tokens signed with LEGACY_JWT_SECRET and
steps aside (None) for every other token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from halobestie.legacy.tokens import legacy_token_user


class LegacyJWTAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0] != b"Bearer":
            return None
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        user = legacy_token_user(raw, token_type="access")
        return None if user is None else (user, None)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class LegacyJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    """The old backend's bearer tokens (same header as `jwtAuth`), described for the cutover window."""

    target_class = "halobestie.legacy.authentication.LegacyJWTAuthentication"
    name = "legacyJwtAuth"

    def get_security_requirement(self, auto_schema):
        return None

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "Cutover window only: an access token of the old Node backend, in the same "
                "`Authorization: Bearer` header, accepted for users brought across by the import "
                "until LEGACY_JWT_ACCEPT_UNTIL (REST and WebSocket). After that it gets 401 "
                "`legacy_token_expired`: the app must log in again (docs/cutover.md)."
            ),
        }
