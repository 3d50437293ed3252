"""Who opens a WebSocket: an `Authorization: Bearer <access>` header, or a one-use ticket.

A ticket (`POST /api/v1/realtime/ticket`) is for clients that cannot set headers on a WebSocket:
random, valid for TICKET_TTL_SECONDS, good for one connection. Only its SHA-256 is stored, and it
is consumed with one atomic UPDATE … RETURNING, so two sockets racing with the same ticket can
never both get in. Tickets and tokens never go to logs.
"""

import copy
import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from halobestie.accounts.models import Role, User
from halobestie.accounts.tokens import revoked_among
from halobestie.db.locks import realtime_ticket_use
from halobestie.db.purge import delete_if_any
from halobestie.errors import ServiceError
from halobestie.legacy.tokens import legacy_token_user, refusal
from sessions_app.models import RealtimeTicket

TICKET_TTL_SECONDS = 60


class SocketUnauthenticated(ServiceError):
    status_code = 401
    code = "unauthenticated"
    detail = "Masuk terlebih dahulu."


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(*, user, now=None) -> tuple:
    """A fresh one-use ticket for `user` (client or mitra): (ticket, expires_at)."""
    now = now or timezone.now()
    ticket = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=TICKET_TTL_SECONDS)
    RealtimeTicket.objects.create(token_hash=_hash(ticket), user=user, expires_at=expires_at)
    return ticket, expires_at


def ticket_consume(*, ticket: str, now=None) -> int | None:
    """The ticket's user id if it is unused and unexpired (and it is used up now); else None."""
    if not ticket or len(ticket) > 128:
        return None
    now = now or timezone.now()
    return realtime_ticket_use(token_hash=_hash(ticket), now=now)


def tickets_purge_expired(*, now=None) -> int:
    """Delete tickets expired for more than a day (kept that long for forensics)."""
    now = now or timezone.now()
    return delete_if_any(RealtimeTicket.objects.filter(expires_at__lt=now - timedelta(days=1)))


def _legacy_user_id(raw: str) -> int:
    """An access token of the old backend, during the cutover window (halobestie/legacy/tokens.py)."""
    try:
        user = legacy_token_user(raw, token_type="access")
    except AuthenticationFailed as exc:
        code, detail = refusal(exc)
        raise SocketUnauthenticated(detail, code=code) from None
    if user is None:
        raise SocketUnauthenticated("Token tidak valid atau kedaluwarsa.", code="token_not_valid")
    return user.pk


def socket_bearer_claims(authorization: str) -> tuple | None:
    """In memory, no database: (user_id, role claim, jti) of a valid access token in an
    `Authorization: Bearer …` header; None when it is not one of our tokens (maybe the old
    backend's: `socket_user` decides). Raises SocketUnauthenticated for a malformed header."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Bearer" or not raw.strip():
        raise SocketUnauthenticated("Header Authorization tidak valid.", code="token_not_valid")
    try:
        token = AccessToken(raw.strip())
    except TokenError:
        return None
    return token.get("user_id"), token.get("role"), token.get("jti")


def socket_users_for_claims(claims_list) -> list:
    """For many sockets at once (a reconnect storm), in two queries whatever their number: for
    each (user_id, role claim, jti) from `socket_bearer_claims`, the user (a copy per socket, with
    `socket_token_jti`) or the SocketUnauthenticated that `socket_user` would raise."""
    user_ids = {user_id for user_id, _, _ in claims_list}
    jtis = {str(jti) for _, _, jti in claims_list if jti}
    # The claim may be a string (simplejwt): compared as text.
    users = {str(user.pk): user for user in User.objects.select_related("mitra").filter(pk__in=user_ids)}
    revoked = revoked_among(jtis)
    results = []
    for user_id, claimed_role, jti in claims_list:
        try:
            if jti and str(jti) in revoked:
                raise SocketUnauthenticated("Token sudah dicabut. Masuk lagi.", code="token_revoked")
            user = users.get(str(user_id))
            _check_socket_user(user, claimed_role=claimed_role)
            user = copy.copy(user)
            user.socket_token_jti = jti
            results.append(user)
        except SocketUnauthenticated as refusal:
            results.append(refusal)
    return results


def socket_user(*, authorization: str | None, ticket: str | None):
    """The user opening a socket, with the same checks as the REST authentication (active, not
    deleted, a mitra not deactivated, the token's role claim matching). Raises
    SocketUnauthenticated with code `unauthenticated`, `token_not_valid`, `ticket_not_valid`,
    `account_deleted`, `mitra_deactivated`, `role_not_allowed` or, for an old backend's token
    after the cutover window, `legacy_token_expired`."""
    claimed_role = None
    token_jti = None
    if authorization:
        claims = socket_bearer_claims(authorization)
        if claims is not None:
            (result,) = socket_users_for_claims([claims])
            if isinstance(result, SocketUnauthenticated):
                raise result
            return result
        user_id = _legacy_user_id(authorization.partition(" ")[2].strip())
    elif ticket:
        user_id = ticket_consume(ticket=ticket)
        if user_id is None:
            raise SocketUnauthenticated(
                "Tiket tidak valid, kedaluwarsa atau sudah dipakai.", code="ticket_not_valid"
            )
    else:
        raise SocketUnauthenticated()
    user = User.objects.select_related("mitra").filter(pk=user_id).first()
    _check_socket_user(user, claimed_role=claimed_role)
    # The consumer re-checks the token (revoked?) and the account periodically.
    user.socket_token_jti = token_jti
    return user


def socket_users_recheck(sockets) -> list:
    """For every open socket of a process at once, every REALTIME_USER_RECHECK_SECONDS
    (sessions_app/socket_batches.py), in two queries whatever their number: for each
    (user_id, token_jti), the refusal the socket would get if it connected now (account
    deactivated, deleted, its access token revoked), or None."""
    user_ids = {user_id for user_id, _ in sockets}
    users = {user.pk: user for user in User.objects.select_related("mitra").filter(pk__in=user_ids)}
    revoked = revoked_among(jti for _, jti in sockets)
    refusals = []
    for user_id, token_jti in sockets:
        if token_jti and str(token_jti) in revoked:
            refusals.append(SocketUnauthenticated("Token sudah dicabut. Masuk lagi.", code="token_revoked"))
            continue
        try:
            _check_socket_user(users.get(user_id), claimed_role=None)
        except SocketUnauthenticated as refusal:
            refusals.append(refusal)
        else:
            refusals.append(None)
    return refusals


def socket_user_recheck(*, user_id, token_jti) -> ServiceError | None:
    """`socket_users_recheck` for one socket."""
    (refusal,) = socket_users_recheck([(user_id, token_jti)])
    return refusal


def _check_socket_user(user, *, claimed_role):
    if user is None or not user.is_active:
        raise SocketUnauthenticated("Akun tidak aktif.", code="token_not_valid")
    if user.deleted_at is not None:
        raise SocketUnauthenticated("Akun sudah dihapus.", code="account_deleted")
    if claimed_role not in (None, user.role):
        raise SocketUnauthenticated("Token tidak cocok dengan akun.", code="token_not_valid")
    if user.role not in (Role.CLIENT, Role.MITRA) or (user.role == Role.MITRA and not hasattr(user, "mitra")):
        raise SocketUnauthenticated("Hanya untuk akun klien atau mitra.", code="role_not_allowed")
    if user.role == Role.MITRA and user.mitra.deactivated_at is not None:
        raise SocketUnauthenticated("Akun mitra dinonaktifkan.", code="mitra_deactivated")
