"""JWT authentication (simplejwt) that also refuses inactive users and deactivated mitras on
every request, so a deactivation takes effect at once for tokens already issued."""

from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed


class JWTAuthentication(SimpleJWTAuthentication):
    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if user.deleted_at is not None:
            raise AuthenticationFailed("Akun sudah dihapus.", code="account_deleted")
        mitra = getattr(user, "mitra", None) if user.role == "mitra" else None
        if mitra is not None and mitra.deactivated_at is not None:
            raise AuthenticationFailed("Akun mitra dinonaktifkan.", code="mitra_deactivated")
        if validated_token.get("role") not in (None, user.role):
            raise AuthenticationFailed("Token tidak cocok dengan akun.", code="token_not_valid")
        return user
