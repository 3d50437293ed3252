"""Staff accounts without a superuser, and a Bestie's password reset by support.

- Who may manage whom (`staff_can_manage`, `staff_assignable_groups`): a superuser anyone; an
  admin (accounts.change_user) only staff accounts that are neither superusers nor admins, and
  only into the support and finance groups. So nobody below a superuser makes an admin or a
  superuser, and support and finance manage no accounts at all (least privilege:
  halobestie/staff_roles.py).
- Every change to a staff account (created; groups, active, password) is audited with a
  before/after snapshot that never holds the password hash (`staff_change_audit`).
- A Bestie who forgot the password: staff allowed to change mitras get a one-time link
  (`mitra_password_reset_link`, audited) to hand over; the Bestie sets a new password on the
  public listener's page (`mitra_password_reset_complete`, audited, every session of the Bestie
  signed out). One-time and short-lived by construction: Django's reset token is a hash of the
  password hash and the last login, so it dies once used (or once the Bestie logs in), and after
  PASSWORD_RESET_TIMEOUT.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from halobestie.accounts.models import IssuedTokenPair, Role, User
from halobestie.accounts.services import _revoke_refresh_tokens
from halobestie.accounts.tokens import family_revoke
from halobestie.audit.services import audit_record
from halobestie.errors import Forbidden, NotFound, ServiceError

STAFF_GROUPS = ("support", "finance", "admin")
# What an admin (not a superuser) may give: never admin, never superuser.
GROUPS_ADMINS_ASSIGN = ("support", "finance")
MITRA_RESET_PERMISSION = "mitras.change_mitra"
MAX_PASSWORD_LENGTH = 128  # hashing is slow on purpose: no megabyte passwords


def staff_assignable_groups(actor):
    names = STAFF_GROUPS if actor.is_superuser else GROUPS_ADMINS_ASSIGN
    return Group.objects.filter(name__in=names).order_by("name")


def staff_can_manage(actor, target) -> bool:
    """May `actor` change `target`'s account (groups, active, password)?"""
    if actor.is_superuser:
        return True
    if not (actor.is_active and actor.is_staff and actor.has_perm("accounts.change_user")):
        return False
    return (
        target.role == Role.STAFF
        and not target.is_superuser
        and not target.groups.exclude(name__in=GROUPS_ADMINS_ASSIGN).exists()
    )


def staff_snapshot(user) -> dict | None:
    """What the audit log keeps of an account: never the hash, only whether it changed."""
    if user is None or user.pk is None:
        return None
    return {
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": sorted(user.user_permissions.values_list("codename", flat=True)),
        "password_fingerprint": user.password[-8:] if user.password else "",
    }


def staff_change_audit(*, actor, user, before: dict | None, request=None, action: str | None = None):
    """Audit one change of an account (call inside the change's transaction). The hash's
    fingerprint is replaced by `password_changed`."""
    after = staff_snapshot(user)
    old_fingerprint = (before or {}).pop("password_fingerprint", None)
    new_fingerprint = after.pop("password_fingerprint")
    if before is not None:
        after["password_changed"] = old_fingerprint != new_fingerprint
    if action is None:
        prefix = (
            "staff_user" if user.role == Role.STAFF or (before or {}).get("role") == Role.STAFF else "user"
        )
        action = f"{prefix}_{'create' if before is None else 'change'}"
    return audit_record(actor=actor, action=action, obj=user, before=before, after=after, request=request)


# A Bestie's password ----------------------------------------------------------------------------


def mitra_password_reset_link(*, actor, user, request=None) -> str:
    """A one-time link for the Bestie `user` to set a new password (audited; the link itself
    is not kept anywhere). Raises Forbidden without the right, NotFound for a non-mitra."""
    if not (actor.is_active and actor.is_staff and actor.has_perm(MITRA_RESET_PERMISSION)):
        raise Forbidden("Perlu izin mengelola Bestie.", code="permission_denied")
    if user.role != Role.MITRA or user.deleted_at is not None:
        raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    audit_record(
        actor=actor, action="mitra_password_reset_link", obj=user,
        after={"valid_seconds": settings.PASSWORD_RESET_TIMEOUT}, request=request,
    )  # fmt: skip
    return f"{settings.PUBLIC_BASE_URL}/mitra/password-reset/{uid}/{token}/"


def mitra_password_reset_user(*, uidb64: str, token: str) -> User:
    """The Bestie a reset link is for, while the link is good. Raises NotFound otherwise."""
    try:
        user_id = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        user_id = None
    user = (
        User.objects.filter(pk=user_id, role=Role.MITRA, deleted_at__isnull=True).first() if user_id else None
    )
    if user is None or not default_token_generator.check_token(user, token):
        raise NotFound(
            "Tautan tidak berlaku lagi. Minta tautan baru ke tim HaloBestie.", code="reset_link_invalid"
        )
    return user


def mitra_password_reset_complete(*, uidb64: str, token: str, password: str, request=None) -> User:
    """Set the Bestie's new password through a good link (once: the link dies with the old
    hash). Every session of the Bestie is signed out. Raises NotFound for a dead link,
    ServiceError `validation_error` for a weak password."""
    with transaction.atomic():
        user = mitra_password_reset_user(uidb64=uidb64, token=token)
        user = User.objects.select_for_update().get(pk=user.pk)
        if not default_token_generator.check_token(user, token):  # used meanwhile
            raise NotFound("Tautan tidak berlaku lagi.", code="reset_link_invalid")
        try:
            if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
                raise ValidationError(f"Paling banyak {MAX_PASSWORD_LENGTH} karakter.")
            validate_password(password, user)
        except ValidationError as error:
            raise ServiceError(
                "Kata sandi terlalu lemah.",
                code="validation_error",
                fields={"password": list(error.messages)},
            ) from error
        user.set_password(password)
        user.save(update_fields=["password", "updated_at"])
        _revoke_refresh_tokens(user.pk)
        # Access tokens too (REST and sockets), not only their refresh tokens: signed out now.
        for family in set(IssuedTokenPair.objects.filter(user=user).values_list("family", flat=True)):
            family_revoke(family=family)
        audit_record(actor=user, action="mitra_password_reset", obj=user, request=request)
    return user
