"""The Node backend's JWTs during the cutover window, so that nobody is logged out by the switch.

The old backend signed its access and refresh tokens with HS256 and its AUTH_JWT_SECRET, which
becomes our LEGACY_JWT_SECRET (ours gets a fresh AUTH_JWT_SECRET, so no token of one backend
ever verifies as the other's). Until LEGACY_JWT_ACCEPT_UNTIL such a token is accepted for a user
we imported (found by the legacy id in its user claim and the kind of account in its role claim):
an access token authenticates REST (authentication.py) and the WebSocket
(sessions_app/tickets.py); a refresh token is exchanged once for a pair of ours at
POST /api/v1/auth/token/refresh. From LEGACY_JWT_ACCEPT_UNTIL on, the same tokens are refused
with `legacy_token_expired`: the app shows its login screen. Tokens are never logged.
"""

import hashlib
from datetime import datetime

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from halobestie.accounts.authentication import check_may_authenticate
from halobestie.accounts.models import Role, User
from halobestie.accounts.tokens import tokens_for
from halobestie.legacy.models import LegacyEntity, LegacyRecord, LegacyRefreshExchange


class LegacyTokenRefused(AuthenticationFailed):
    """401 for a token the old backend really issued but that may not be used (any more)."""


def _expired():
    return LegacyTokenRefused(
        "Sesi dari sistem lama sudah berakhir. Silakan masuk lagi.", code="legacy_token_expired"
    )


def _invalid(detail="Token tidak valid atau kedaluwarsa."):
    return LegacyTokenRefused(detail, code="token_not_valid")


def refusal(exc: AuthenticationFailed) -> tuple:
    """(code, detail) of a refusal, ours or simplejwt's (whose detail is a dict), for the socket."""
    if isinstance(exc.detail, dict):
        return str(exc.detail.get("code", "token_not_valid")), str(exc.detail.get("detail", ""))
    return str(exc.get_codes()), str(exc.detail)


def accept_until() -> datetime:
    return datetime.fromisoformat(settings.LEGACY_JWT_ACCEPT_UNTIL)


def legacy_token_user(raw: str, *, token_type: str, now=None) -> User | None:
    """The imported user an old backend's token of `token_type` ("access" or "refresh") stands
    for. None when the token was not signed by the old backend (or no LEGACY_JWT_SECRET is set):
    then it is not ours to judge. Raises LegacyTokenRefused after the window
    (`legacy_token_expired`) and for an expired token, a token of the wrong type or role, or a
    user that was not imported (`token_not_valid`)."""
    if not settings.LEGACY_JWT_SECRET or not raw:
        return None
    try:
        # Expiry is checked below, after the window: past the window every old token gets the
        # same "log in again" answer. A numeric `sub` (a serial id) is the old backend's right.
        claims = jwt.decode(
            raw,
            settings.LEGACY_JWT_SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_sub": False},
        )
    except jwt.InvalidTokenError:
        return None
    now = now or timezone.now()
    if now >= accept_until():
        raise _expired()
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)) or now.timestamp() >= expires:
        raise _invalid()
    wanted_type = (
        settings.LEGACY_JWT_ACCESS_TYPE if token_type == "access" else settings.LEGACY_JWT_REFRESH_TYPE
    )
    if claims.get(settings.LEGACY_JWT_TYPE_CLAIM) != wanted_type:
        raise _invalid("Jenis token tidak cocok.")
    role = claims.get(settings.LEGACY_JWT_ROLE_CLAIM)
    entity, user_role = {
        settings.LEGACY_JWT_ROLE_CLIENT: (LegacyEntity.CLIENT, Role.CLIENT),
        settings.LEGACY_JWT_ROLE_MITRA: (LegacyEntity.BESTIE, Role.MITRA),
    }.get(role, (None, None))
    legacy_id = claims.get(settings.LEGACY_JWT_USER_CLAIM)
    if entity is None or isinstance(legacy_id, bool) or not isinstance(legacy_id, (str, int)):
        raise _invalid()
    record = LegacyRecord.objects.filter(entity=entity, legacy_id=str(legacy_id)).first()
    user = User.objects.select_related("mitra").filter(pk=record.object_id).first() if record else None
    if user is None:
        raise _invalid("Akun tidak ditemukan.")
    check_may_authenticate(user, role_claim=user_role)
    return user


def _burn(*, refresh: str, user: User) -> bool:
    """Mark an old refresh token used; False when it already was. Precondition: inside
    transaction.atomic() (the unique constraint decides between concurrent requests)."""
    token_hash = hashlib.sha256(refresh.encode()).hexdigest()
    try:
        with transaction.atomic():
            LegacyRefreshExchange.objects.create(token_hash=token_hash, user=user)
    except IntegrityError:
        return False
    return True


def legacy_refresh_exchange(*, refresh: str, now=None) -> dict | None:
    """A pair of our tokens for an old backend's refresh token, once per token (its SHA-256 is
    stored under a unique constraint, so two concurrent exchanges cannot both succeed). None
    when `refresh` is not an old backend's token."""
    user = legacy_token_user(refresh, token_type="refresh", now=now)
    if user is None:
        return None
    with transaction.atomic():
        if not _burn(refresh=refresh, user=user):
            raise _invalid("Token sudah ditukar.")
        return tokens_for(user)


def legacy_refresh_revoke(*, refresh: str, now=None) -> bool:
    """Logout with an old backend's refresh token: it can no longer be exchanged. False when
    `refresh` is not an old backend's token (then it is ours to revoke)."""
    user = legacy_token_user(refresh, token_type="refresh", now=now)
    if user is None:
        return False
    with transaction.atomic():
        _burn(refresh=refresh, user=user)
    return True
