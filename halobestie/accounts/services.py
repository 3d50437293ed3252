"""Writes on accounts: OTP login, mitra login, tokens, profile, erasure, devices.

Every state change is one function here; the API views only translate HTTP. Decisions are made
in Postgres under locks: the OTP limits under a per-phone and a per-IP advisory lock (so two
concurrent requests cannot both slip under a cap), the attempt count under the challenge's row
lock (so concurrent guesses can never exceed the cap), refresh rotation under the outstanding
token's row lock (so one refresh token rotates once). Provider calls (network) happen outside
any lock. OTP codes and tokens are never logged.
"""

import logging
import math
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError, TokenError
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from halobestie.accounts import hooks, tokens
from halobestie.accounts.authentication import check_may_authenticate
from halobestie.accounts.models import (
    Device,
    IssuedTokenPair,
    LoginFailure,
    OtpChallenge,
    OtpStatus,
    Role,
    User,
)
from halobestie.audit.models import AuditEntry
from halobestie.db.locks import advisory_xact_lock_text
from halobestie.db.purge import delete_if_any
from halobestie.errors import Forbidden, NotFound, ServiceError, TooManyRequests
from halobestie.integrations.otp import OtpProviderError, OtpProviderUnavailable, get_provider

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
MAX_DEVICES_PER_USER = 10
_UNCHANGED = object()


# Errors the apps switch on ------------------------------------------------------------------


class OtpResendTooSoon(TooManyRequests):
    code = "otp_resend_too_soon"
    detail = "Kode baru saja dikirim. Tunggu sebentar sebelum meminta kode lagi."


class OtpPhoneLimit(TooManyRequests):
    code = "otp_phone_limit"
    detail = "Terlalu banyak permintaan kode untuk nomor ini. Coba lagi nanti."


class OtpIpLimit(TooManyRequests):
    code = "otp_ip_limit"
    detail = "Terlalu banyak permintaan kode dari jaringan ini. Coba lagi nanti."


class OtpAttemptsExceeded(TooManyRequests):
    code = "otp_attempts_exceeded"
    detail = "Terlalu banyak kode salah. Minta kode baru."


class OtpChallengeNotFound(NotFound):
    code = "otp_challenge_not_found"
    detail = "Kode OTP untuk nomor ini tidak ditemukan. Minta kode baru."


class OtpExpired(ServiceError):
    code = "otp_expired"
    detail = "Kode OTP sudah kedaluwarsa. Minta kode baru."


class OtpAlreadyUsed(ServiceError):
    code = "otp_already_used"
    detail = "Kode OTP ini sudah dipakai. Minta kode baru."


class OtpSuperseded(ServiceError):
    code = "otp_superseded"
    detail = "Kode baru sudah dikirim; pakai kode yang terbaru."


class OtpInvalid(ServiceError):
    code = "otp_invalid"
    detail = "Kode OTP salah."


class InvalidCredentials(ServiceError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "invalid_credentials"
    detail = "Nomor HP atau kata sandi salah."

    def __init__(self, detail=None):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="api"'})


class LoginPhoneLimit(TooManyRequests):
    code = "login_phone_limit"
    detail = "Terlalu banyak percobaan masuk yang salah untuk nomor ini. Coba lagi nanti."


class LoginIpLimit(TooManyRequests):
    code = "login_ip_limit"
    detail = "Terlalu banyak percobaan masuk yang salah dari jaringan ini. Coba lagi nanti."


class MitraDeactivated(Forbidden):
    code = "mitra_deactivated"
    detail = "Akun mitra dinonaktifkan. Hubungi tim HaloBestie."


class AccountInactive(Forbidden):
    code = "account_inactive"
    detail = "Akun ini tidak aktif. Hubungi tim HaloBestie."


class NotAClientPhone(Forbidden):
    code = "role_not_allowed"
    detail = "Nomor ini terdaftar sebagai akun mitra. Masuk lewat aplikasi mitra dengan kata sandi."


# OTP ----------------------------------------------------------------------------------------


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _window_cap(queryset, *, limit: int, window: timedelta, now: datetime, error):
    """Raise `error` with Retry-After when `queryset` (rows with `created_at`: OTP challenges,
    login failures) holds `limit` rows within the last `window`: the wait is until the oldest one
    that keeps the count at the cap leaves the window."""
    recent = list(
        queryset.filter(created_at__gt=now - window)
        .order_by("created_at")
        .values_list("created_at", flat=True)
    )
    if len(recent) >= limit:
        raise error(retry_after=_seconds_until(recent[len(recent) - limit] + window, now))


def otp_challenge_request(*, phone: str, ip_address: str | None, now: datetime | None = None) -> OtpChallenge:
    """Send an OTP to `phone` (already E.164, see accounts.phones). Refuses with 429 and
    Retry-After inside the resend cooldown, and past the hourly caps per phone and per IP. A
    provider failure (503/502) leaves no trace, so the user may retry at once. On success the
    phone's older open challenges are superseded."""
    now = now or timezone.now()
    provider = get_provider()
    cooldown = timedelta(seconds=settings.OTP_RESEND_COOLDOWN_SECONDS)
    with transaction.atomic():
        # Always phone before IP: two requests never wait on each other in opposite orders.
        advisory_xact_lock_text(f"otp:phone:{phone}")
        if ip_address:
            advisory_xact_lock_text(f"otp:ip:{ip_address}")
        latest = OtpChallenge.objects.filter(phone=phone).order_by("-created_at").first()
        if latest is not None and latest.created_at + cooldown > now:
            raise OtpResendTooSoon(retry_after=_seconds_until(latest.created_at + cooldown, now))
        _window_cap(
            OtpChallenge.objects.filter(phone=phone),
            limit=settings.OTP_MAX_PER_PHONE_PER_HOUR,
            window=HOUR,
            now=now,
            error=OtpPhoneLimit,
        )
        if ip_address:
            _window_cap(
                OtpChallenge.objects.filter(ip_address=ip_address),
                limit=settings.OTP_MAX_PER_IP_PER_HOUR,
                window=HOUR,
                now=now,
                error=OtpIpLimit,
            )
        # Committed before the provider is called: a concurrent request already sees it and
        # waits out the cooldown instead of sending a second message.
        challenge = OtpChallenge.objects.create(
            phone=phone,
            ip_address=ip_address,
            provider=provider.name,
            status=OtpStatus.SENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.OTP_TTL_SECONDS),
        )
    try:
        reference = provider.start(phone=phone)
    except Exception:
        OtpChallenge.objects.filter(pk=challenge.pk).delete()
        raise
    with transaction.atomic():
        OtpChallenge.objects.filter(phone=phone, status__in=[OtpStatus.PENDING, OtpStatus.SENDING]).exclude(
            pk=challenge.pk
        ).update(status=OtpStatus.SUPERSEDED)
        challenge.provider_reference = reference
        challenge.status = OtpStatus.PENDING
        challenge.save(update_fields=["provider_reference", "status"])
    logger.info("otp sent", extra={"challenge_id": str(challenge.pk), "provider": provider.name})
    return challenge


def _locked_challenge(*, phone: str, challenge_id) -> OtpChallenge:
    """Precondition: inside transaction.atomic()."""
    challenges = OtpChallenge.objects.select_for_update().filter(phone=phone)
    if challenge_id is not None:
        challenge = challenges.filter(pk=challenge_id).first()
    else:
        challenge = (
            challenges.filter(status__in=[OtpStatus.PENDING, OtpStatus.VERIFIED])
            .order_by("-created_at")
            .first()
        )
    if challenge is None or challenge.status == OtpStatus.SENDING:
        raise OtpChallengeNotFound()
    return challenge


def otp_challenge_verify(*, phone: str, code: str, challenge_id=None, now: datetime | None = None) -> User:
    """Check `code` for the phone's challenge (the given one, else the latest) and return the
    client, created on first login. Each check uses one attempt, reserved under the row lock
    before the provider is asked, so concurrent guesses never exceed OTP_MAX_ATTEMPTS; once
    they are used up every further code is refused (429), the right one too."""
    now = now or timezone.now()
    provider = get_provider()
    with transaction.atomic():
        challenge = _locked_challenge(phone=phone, challenge_id=challenge_id)
        if challenge.status == OtpStatus.VERIFIED:
            raise OtpAlreadyUsed()
        if challenge.status == OtpStatus.SUPERSEDED:
            raise OtpSuperseded()
        if challenge.expires_at <= now or challenge.provider != provider.name:
            raise OtpExpired()
        if challenge.attempts >= settings.OTP_MAX_ATTEMPTS:
            cooldown_end = challenge.created_at + timedelta(seconds=settings.OTP_RESEND_COOLDOWN_SECONDS)
            raise OtpAttemptsExceeded(retry_after=_seconds_until(cooldown_end, now))
        challenge.attempts = F("attempts") + 1
        challenge.save(update_fields=["attempts"])
        challenge.refresh_from_db(fields=["attempts"])
    try:
        is_right = provider.check(phone=phone, reference=challenge.provider_reference, code=code)
    except (OtpProviderUnavailable, OtpProviderError):
        # The code was never judged: the attempt is given back.
        OtpChallenge.objects.filter(pk=challenge.pk, attempts__gt=0).update(attempts=F("attempts") - 1)
        raise
    if not is_right:
        remaining = max(0, settings.OTP_MAX_ATTEMPTS - challenge.attempts)
        raise OtpInvalid(f"Kode OTP salah. Sisa percobaan: {remaining}.")
    with transaction.atomic():
        challenge = OtpChallenge.objects.select_for_update().get(pk=challenge.pk)
        if challenge.status != OtpStatus.PENDING:
            # A concurrent request with the right code won the challenge.
            raise OtpAlreadyUsed()
        challenge.status = OtpStatus.VERIFIED
        challenge.verified_at = now
        challenge.save(update_fields=["status", "verified_at"])
        user = _client_for_phone(phone=phone, now=now)
    logger.info("otp verified", extra={"challenge_id": str(challenge.pk), "user_id": user.pk})
    return user


def _client_for_phone(*, phone: str, now: datetime) -> User:
    """The client with this phone, created when there is none. Precondition: inside
    transaction.atomic(), with the phone's challenge locked."""
    user = User.objects.select_for_update().filter(phone=phone).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(phone=phone, role=Role.CLIENT)
        except IntegrityError:
            user = User.objects.select_for_update().get(phone=phone)
    if user.role != Role.CLIENT:
        raise NotAClientPhone()
    if not user.is_active:
        raise AccountInactive()
    user.last_login = now
    user.save(update_fields=["last_login"])
    return user


def otp_challenges_purge(*, before: datetime) -> int:
    """Delete challenges created before `before` (they hold phone numbers and serve no limit
    after an hour). For the scheduler's retention purge. Returns how many went."""
    return delete_if_any(OtpChallenge.objects.filter(created_at__lt=before))


# Mitra login and tokens ---------------------------------------------------------------------


def _login_caps(*, phone: str, ip_address: str | None, now: datetime) -> None:
    """Raise 429 with Retry-After when the phone or the IP is at its cap of login failures."""
    window = timedelta(seconds=settings.MITRA_LOGIN_WINDOW_SECONDS)
    _window_cap(
        LoginFailure.objects.filter(phone=phone),
        limit=settings.MITRA_LOGIN_MAX_FAILURES_PER_PHONE,
        window=window,
        now=now,
        error=LoginPhoneLimit,
    )
    if ip_address:
        _window_cap(
            LoginFailure.objects.filter(ip_address=ip_address),
            limit=settings.MITRA_LOGIN_MAX_FAILURES_PER_IP,
            window=window,
            now=now,
            error=LoginIpLimit,
        )


def auth_mitra_login(
    *, phone: str, password: str, ip_address: str | None = None, now: datetime | None = None
) -> User:
    """The mitra with this phone (E.164) and password. The same error for an unknown phone and
    a wrong password; a deactivated mitra's own error only once the password is right.

    Brute force: each wrong password is stored (LoginFailure); past
    MITRA_LOGIN_MAX_FAILURES_PER_PHONE for the phone or MITRA_LOGIN_MAX_FAILURES_PER_IP for the
    address within MITRA_LOGIN_WINDOW_SECONDS, every attempt is refused with 429 and Retry-After
    before the password is even checked (the right one too). The password hash (slow on
    purpose) runs outside any transaction; its verdict is only given after the caps are checked
    again and a failure recorded under the phone's and the IP's advisory locks, so concurrent
    guesses never learn more than the cap allows. A successful login clears the phone's failures."""
    now = now or timezone.now()
    outdated_hash = []  # the right password under a hasher that is no longer the preferred one
    _login_caps(phone=phone, ip_address=ip_address, now=now)
    user = User.objects.select_related("mitra").filter(phone=phone, role=Role.MITRA).first()
    if user is None or not hasattr(user, "mitra"):
        # Hash anyway: the answer takes as long as for a known phone.
        User().set_password(password)
        is_right = False
    else:
        is_right = check_password(password, user.password, setter=lambda raw: outdated_hash.append(True))
    with transaction.atomic():
        # Always phone before IP, as for OTP: no two requests wait on each other in opposite orders.
        advisory_xact_lock_text(f"login:phone:{phone}")
        if ip_address:
            advisory_xact_lock_text(f"login:ip:{ip_address}")
        # Again under the locks: guesses hashed concurrently are judged one at a time.
        _login_caps(phone=phone, ip_address=ip_address, now=now)
        if is_right:
            LoginFailure.objects.filter(phone=phone).delete()
        else:
            LoginFailure.objects.create(phone=phone, ip_address=ip_address, created_at=now)
    if not is_right:
        # Raised after the commit: the failure must be counted.
        raise InvalidCredentials()
    if user.mitra.deactivated_at is not None:
        raise MitraDeactivated()
    if not user.is_active or user.deleted_at is not None:
        raise AccountInactive()
    User.objects.filter(pk=user.pk).update(last_login=now)
    if outdated_hash:
        _password_upgrade(user=user, password=password)
    logger.info("mitra logged in", extra={"user_id": user.pk, "mitra_id": user.mitra.pk})
    return user


def _password_upgrade(*, user: User, password: str) -> None:
    """Re-hash a right password with the preferred hasher (a bcrypt hash imported from the Node
    backend, or PBKDF2 with fewer iterations than today's). Outside any transaction and lock:
    hashing is slow. Compare-and-set on the old hash, so a password changed meanwhile stays."""
    User.objects.filter(pk=user.pk, password=user.password).update(password=make_password(password))


def login_failures_purge(*, before: datetime) -> int:
    """Delete login failures recorded before `before` (outside every window, they limit
    nothing). For the scheduler's retention purge. Returns how many went."""
    return delete_if_any(LoginFailure.objects.filter(created_at__lt=before))


def _decode_refresh(raw: str) -> dict:
    """The refresh token's claims: signature, expiry and type checked; the blacklist is not (a
    rotated token must be recognised as reuse, tokens.py)."""
    try:
        payload = token_backend.decode(raw, verify=True)
    except (TokenError, TokenBackendError) as exc:
        raise InvalidToken(str(exc.args[0]) if exc.args else None) from None
    if payload.get("token_type") != "refresh" or not payload.get("jti"):
        raise InvalidToken("Token has wrong type")
    return payload


class RefreshTokenReused(InvalidToken):
    default_detail = "Token refresh sudah dipakai; semua sesi login dari token ini dicabut. Masuk lagi."
    default_code = "token_reused"


def auth_token_refresh(*, refresh: str, now: datetime | None = None) -> dict:
    """Rotate: the given refresh token is blacklisted and a new `{access, refresh}` pair of the
    same family issued, under the outstanding token's row lock, so a token rotates at most once
    even when sent twice at the same moment. The same token again within
    AUTH_REFRESH_REUSE_LEEWAY_SECONDS gets the same successor pair; after that it is a reuse
    (a stolen token, or its thief's): the whole family is revoked, access tokens too, and the
    answer is 401 `token_reused`. Refused (401) for deleted users, deactivated mitras and
    inactive accounts."""
    now = now or timezone.now()
    payload = _decode_refresh(refresh)
    reused = False
    with transaction.atomic():
        outstanding = OutstandingToken.objects.select_for_update().filter(jti=payload["jti"]).first()
        if outstanding is None:
            raise InvalidToken("Token is blacklisted")
        pair = IssuedTokenPair.objects.select_for_update().filter(refresh_jti=payload["jti"]).first()
        user = User.objects.select_related("mitra").filter(pk=payload.get("user_id")).first()
        if user is None:
            raise InvalidToken("User not found")
        if BlacklistedToken.objects.filter(token=outstanding).exists():
            answer = tokens.successor_within_leeway(pair=pair, now=now) if pair is not None else None
            if answer is None:
                if pair is None:
                    raise InvalidToken("Token is blacklisted")
                tokens.family_revoke(family=pair.family)
                reused = True
        else:
            answer = None
        if not reused:
            check_may_authenticate(user, role_claim=payload.get("role"))
            if answer is None:
                BlacklistedToken.objects.create(token=outstanding)
                answer = (
                    tokens.pair_rotate(pair=pair, user=user) if pair is not None else tokens.tokens_for(user)
                )
    if reused:
        # Raised after the commit: the family stays revoked.
        logger.warning("refresh token reused: its family is revoked", extra={"user_id": user.pk})
        raise RefreshTokenReused()
    return answer


def auth_logout(*, refresh: str, access_payload: dict | None = None) -> None:
    """Revoke the refresh token's whole family: its refresh tokens are blacklisted and its
    access tokens refused from now on (REST and socket connect), the one the request
    carried (`access_payload`) too."""
    payload = _decode_refresh(refresh)
    with transaction.atomic():
        pair = IssuedTokenPair.objects.filter(refresh_jti=payload["jti"]).first()
        if pair is not None:
            tokens.family_revoke(family=pair.family)
        outstanding = OutstandingToken.objects.filter(jti=payload["jti"]).first()
        if outstanding is not None:
            BlacklistedToken.objects.get_or_create(token=outstanding)
        if access_payload and access_payload.get("jti") and access_payload.get("exp"):
            tokens.access_revoke(
                jti=access_payload["jti"], expires_at=datetime.fromtimestamp(access_payload["exp"], tz=UTC)
            )


def _revoke_refresh_tokens(user_id) -> None:
    BlacklistedToken.objects.bulk_create(
        [
            BlacklistedToken(token=token)
            for token in OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
        ],
        ignore_conflicts=True,
    )


# Profile and erasure ------------------------------------------------------------------------


def user_update_profile(*, user: User, display_name=_UNCHANGED) -> User:
    """Change the account's own fields (the nickname). A mitra's public Bestie profile is the
    mitras app's (mitras.services.mitra_update_profile)."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        changed = []
        if display_name is not _UNCHANGED:
            value = (display_name or "").strip()
            if len(value) > 100:
                raise ServiceError(
                    "Data yang dikirim tidak valid.",
                    code="validation_error",
                    fields={"display_name": ["Paling banyak 100 karakter."]},
                )
            locked.display_name = value
            changed.append("display_name")
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
    return locked


def user_erase(*, user: User) -> User:
    """Erase a client's personal data: phone (null: the row, and the sessions and payments that
    point at it, stay as an anonymous account), nickname, e-mail, password; delete devices and
    OTP challenges; blacklist every refresh token (access tokens are refused from now on by the
    authentication class, which checks `deleted_at`). Idempotent. After commit the
    `on_client_deleted` hooks run (halobestie/accounts/hooks.py: the sessions app ends an open
    session there). Precondition: the caller is the client themself."""
    if user.role != Role.CLIENT:
        raise Forbidden("Hanya akun klien yang bisa dihapus sendiri.", code="role_not_allowed")
    now = timezone.now()
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.deleted_at is not None:
            return locked
        phone = locked.phone
        hooks.notify_client_phone_erasing(locked, phone)
        locked.phone = None
        locked.email = None
        locked.display_name = ""
        locked.deleted_at = now
        locked.set_unusable_password()
        locked.save(update_fields=["phone", "email", "display_name", "deleted_at", "password", "updated_at"])
        Device.objects.filter(user=locked).delete()
        if phone:
            OtpChallenge.objects.filter(phone=phone).delete()
        _admin_log_pseudonymise(locked.pk)
        _revoke_refresh_tokens(locked.pk)
        # The other apps' copies (transcripts, comments, report texts, payer data): same transaction.
        hooks.notify_client_erasing(locked.pk)
        transaction.on_commit(partial(hooks.notify_client_deleted, locked.pk))
    logger.info("client account erased", extra={"user_id": locked.pk})
    return locked


def _admin_log_pseudonymise(user_id) -> None:
    """The control center's own records name the user by str(user) (phone or nickname): the
    admin log and the audit entries about this user keep what happened, not who."""
    user_type = ContentType.objects.get_for_model(User)
    LogEntry.objects.filter(content_type=user_type, object_id=str(user_id)).update(
        object_repr=f"user {user_id}", change_message=""
    )
    AuditEntry.objects.filter(object_type="accounts.user", object_id=str(user_id)).update(
        before=None, after={"erased": True}
    )


# Devices ------------------------------------------------------------------------------------


def device_register(*, user: User, token: str, platform: str = "") -> Device:
    """Upsert an FCM token: one statement (INSERT … ON CONFLICT), so the token belongs to
    whoever registered it last even under concurrent registrations. A user keeps at most
    MAX_DEVICES_PER_USER tokens (the most recently registered)."""
    with transaction.atomic():
        Device.objects.bulk_create(
            [Device(user=user, token=token, platform=platform)],
            update_conflicts=True,
            unique_fields=["token"],
            update_fields=["user", "platform", "updated_at"],
        )
        stale = (
            Device.objects.filter(user=user)
            .order_by("-updated_at", "-id")
            .values_list("id", flat=True)[MAX_DEVICES_PER_USER:]
        )
        Device.objects.filter(id__in=list(stale)).delete()
        return Device.objects.get(token=token)


def device_delete(*, user: User, token: str) -> None:
    """Delete one of the user's own tokens; NotFound for a token that is not theirs."""
    deleted, _ = Device.objects.filter(user=user, token=token).delete()
    if not deleted:
        raise NotFound("Perangkat tidak ditemukan.")


def scheduler_jobs():
    """(name, job(now=…)) pairs for the project scheduler (halobestie/scheduler.py), in order."""
    return [
        # OTP challenges hold phone numbers and serve the hourly limits only: kept two hours.
        ("otp_challenges_purge", lambda now: otp_challenges_purge(before=now - timedelta(hours=2))),
        ("login_failures_purge", lambda now: login_failures_purge(before=now - timedelta(days=1))),
        # Denied access tokens past their expiry, token pairs whose refresh token expired.
        ("revoked_tokens_purge", lambda now: tokens.revoked_purge(now=now)),
    ]
