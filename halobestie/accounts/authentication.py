"""JWT authentication (simplejwt) that also refuses inactive users and deactivated mitras on
every request, so a deactivation takes effect at once for tokens already issued."""

from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed


def check_may_authenticate(user, *, role_claim) -> None:
    """Raise AuthenticationFailed (401) when `user` may no longer use a token claiming
    `role_claim`: inactive or deleted accounts, deactivated mitras, a role that changed. Used on
    every request (below) and on every refresh (accounts.services.auth_token_refresh)."""
    if not user.is_active:
        raise AuthenticationFailed("Akun tidak aktif.", code="user_inactive")
    if user.deleted_at is not None:
        raise AuthenticationFailed("Akun sudah dihapus.", code="account_deleted")
    mitra = getattr(user, "mitra", None) if user.role == "mitra" else None
    if mitra is not None and mitra.deactivated_at is not None:
        raise AuthenticationFailed("Akun mitra dinonaktifkan.", code="mitra_deactivated")
    if role_claim not in (None, user.role):
        raise AuthenticationFailed("Token tidak cocok dengan akun.", code="token_not_valid")


def check_access_not_revoked(validated_token) -> None:
    """Raise AuthenticationFailed (401 `token_revoked`) for an access token denied before its
    expiry (logout, a reused refresh token: halobestie/accounts/tokens.py)."""
    from halobestie.accounts.tokens import access_is_revoked

    if access_is_revoked(validated_token.get("jti")):
        raise AuthenticationFailed("Token sudah dicabut. Masuk lagi.", code="token_revoked")


class JWTAuthentication(SimpleJWTAuthentication):
    def get_validated_token(self, raw_token):
        validated_token = super().get_validated_token(raw_token)
        check_access_not_revoked(validated_token)
        return validated_token

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        check_may_authenticate(user, role_claim=validated_token.get("role"))
        return user
