"""JWT pairs (simplejwt) with the user's role as a claim, in families, and their revocation.

- A login issues a pair and starts a family (`IssuedTokenPair`); a refresh rotates: the old
  refresh token is blacklisted and the successor pair joins the family.
- Reusing a rotated refresh token revokes the family: every refresh token in it is blacklisted
  and every access token in it denied (`RevokedAccessToken`). Except within
  AUTH_REFRESH_REUSE_LEEWAY_SECONDS of the rotation: then the same successor pair is answered
  again, so an app refreshing from foreground and background at once stays logged in.
- Logout revokes the family too, access tokens included.
The deny list lives in PostgreSQL and is read on every REST request and socket connect (one
primary-key lookup): revocation holds whatever state Valkey is in.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from halobestie.accounts.models import IssuedTokenPair, RevokedAccessToken
from halobestie.db.purge import delete_if_any

logger = logging.getLogger(__name__)


def tokens_for(user, *, family=None) -> dict:
    """A fresh `{access, refresh}` pair for an active user, in `family` (a new one: a login)."""
    return _issue(user, family=family or uuid.uuid4())[1]


def _issue(user, *, family) -> tuple:
    refresh = RefreshToken.for_user(user)
    refresh["role"] = user.role
    access = refresh.access_token
    pair = {"access": str(access), "refresh": str(refresh)}
    row = IssuedTokenPair.objects.create(
        user=user,
        family=family,
        refresh_jti=refresh["jti"],
        access_jti=access["jti"],
        access_expires_at=datetime.fromtimestamp(access["exp"], tz=UTC),
        access_token=pair["access"],
        refresh_token=pair["refresh"],
    )
    return row, pair


def pair_rotate(*, pair: IssuedTokenPair, user) -> dict:
    """The successor of `pair` (locked by the caller, its refresh token just blacklisted)."""
    successor, answer = _issue(user, family=pair.family)
    pair.successor = successor
    pair.rotated_at = timezone.now()
    pair.save(update_fields=["successor", "rotated_at"])
    return answer


def successor_within_leeway(*, pair: IssuedTokenPair, now) -> dict | None:
    """The pair already answered for this rotated refresh token, if asked again within the
    leeway and still good; else None (the caller revokes the family)."""
    leeway = timedelta(seconds=settings.AUTH_REFRESH_REUSE_LEEWAY_SECONDS)
    successor = pair.successor
    if successor is None or pair.rotated_at is None or now - pair.rotated_at > leeway:
        return None
    if RevokedAccessToken.objects.filter(jti=successor.access_jti).exists():
        return None
    if BlacklistedToken.objects.filter(token__jti=successor.refresh_jti).exists():
        # Rotated again meanwhile, or revoked: this is no longer the same successor.
        return None
    return {"access": successor.access_token, "refresh": successor.refresh_token}


def family_revoke(*, family) -> int:
    """Blacklist every refresh token and deny every unexpired access token of the family.
    Returns how many pairs it held. Idempotent."""
    pairs = list(
        IssuedTokenPair.objects.filter(family=family).values_list(
            "refresh_jti", "access_jti", "access_expires_at"
        )
    )
    now = timezone.now()
    BlacklistedToken.objects.bulk_create(
        [
            BlacklistedToken(token=token)
            for token in OutstandingToken.objects.filter(jti__in=[p[0] for p in pairs])
        ],
        ignore_conflicts=True,
    )
    RevokedAccessToken.objects.bulk_create(
        [
            RevokedAccessToken(jti=access_jti, expires_at=expires_at)
            for _, access_jti, expires_at in pairs
            if expires_at > now
        ],
        ignore_conflicts=True,
    )
    return len(pairs)


def access_revoke(*, jti: str, expires_at) -> None:
    RevokedAccessToken.objects.bulk_create(
        [RevokedAccessToken(jti=jti, expires_at=expires_at)], ignore_conflicts=True
    )


def access_is_revoked(jti) -> bool:
    return bool(jti) and RevokedAccessToken.objects.filter(jti=str(jti)).exists()


def revoked_among(jtis) -> set:
    """The denied ones among many access-token jtis (one query; sockets reconnecting at once)."""
    jtis = [str(jti) for jti in jtis if jti]
    if not jtis:
        return set()
    return set(RevokedAccessToken.objects.filter(jti__in=jtis).values_list("jti", flat=True))


def revoked_purge(*, now=None) -> int:
    """Forget denied access tokens that expired anyway (they are refused for their expiry), and
    pairs whose refresh token expired (nothing can rotate or reuse them any more). For the
    scheduler's retention purge. Returns how many rows went."""
    now = now or timezone.now()
    # delete_if_any: an idle tick opens no write transaction (the embedded default's SQLite).
    denied = delete_if_any(RevokedAccessToken.objects.filter(expires_at__lt=now))
    lifetime = settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
    pairs = delete_if_any(IssuedTokenPair.objects.filter(created_at__lt=now - lifetime - timedelta(days=1)))
    return denied + pairs
