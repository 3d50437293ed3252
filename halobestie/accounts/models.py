"""The user: a client (phone OTP), a mitra (phone and password, created by staff) or staff
(e-mail and password, control center only)."""

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    CLIENT = "client", _("Client")
    MITRA = "mitra", _("Bestie (mitra)")
    STAFF = "staff", _("Staff")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, *, phone=None, email=None, password=None, role=Role.CLIENT, **fields):
        """Precondition: `phone` is already E.164 (see accounts.phones.normalize_phone)."""
        email = self.normalize_email(email) if email else None
        user = self.model(phone=phone, email=email, role=role, **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password, **fields):
        fields.setdefault("display_name", "Admin")
        return self.create_user(
            email=email, password=password, role=Role.STAFF, is_staff=True, is_superuser=True, **fields
        )


class User(AbstractBaseUser, PermissionsMixin):
    phone = models.CharField(_("phone number"), max_length=16, unique=True, null=True, blank=True)
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.CLIENT)
    email = models.EmailField(_("e-mail"), unique=True, null=True, blank=True)
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("control center access"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=["client", "mitra", "staff"]), name="accounts_user_role_valid"
            ),
        ]

    def __str__(self):
        return self.display_name or self.phone or self.email or f"user {self.pk}"

    @property
    def is_client(self):
        return self.role == Role.CLIENT

    @property
    def is_mitra(self):
        return self.role == Role.MITRA


class Device(models.Model):
    """An FCM registration token. A token belongs to the user who registered it last."""

    user = models.ForeignKey(User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="devices")
    token = models.CharField(_("FCM token"), max_length=512, unique=True)
    platform = models.CharField(_("platform"), max_length=16, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")

    def __str__(self):
        return f"device of {self.user_id}"


class OtpStatus(models.TextChoices):
    SENDING = "sending", _("Sending")
    PENDING = "pending", _("Waiting for the code")
    VERIFIED = "verified", _("Verified")
    SUPERSEDED = "superseded", _("Replaced by a new code")


class OtpChallenge(models.Model):
    """One OTP sent to a phone. Our own limits live here: the lifetime (`expires_at`), the
    resend cooldown and hourly caps (rows per phone / per IP in the last hour) and the attempt
    cap (`attempts`, counted under a row lock). The code itself is never stored: the provider
    holds it (`provider_reference`)."""

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    phone = models.CharField(_("phone number"), max_length=16)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    provider = models.CharField(_("provider"), max_length=16)
    provider_reference = models.CharField(_("provider reference"), max_length=128, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=OtpStatus.choices, default=OtpStatus.SENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"))
    expires_at = models.DateTimeField(_("expires at"))
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)

    class Meta:
        verbose_name = _("OTP challenge")
        verbose_name_plural = _("OTP challenges")
        indexes = [
            models.Index(fields=["phone", "-created_at"], name="otp_phone_created_idx"),
            models.Index(fields=["ip_address", "-created_at"], name="otp_ip_created_idx"),
        ]

    def __str__(self):
        return f"OTP {self.id}"


class LoginFailure(models.Model):
    """One wrong mitra password (or unknown phone). The login throttle counts these per phone
    and per IP within MITRA_LOGIN_WINDOW_SECONDS; a successful login clears the phone's."""

    phone = models.CharField(_("phone number"), max_length=16)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("failed login")
        verbose_name_plural = _("failed logins")
        indexes = [
            models.Index(fields=["phone", "-created_at"], name="login_failure_phone_idx"),
            models.Index(fields=["ip_address", "-created_at"], name="login_failure_ip_idx"),
        ]

    def __str__(self):
        return f"login failure {self.pk}"


class IssuedTokenPair(models.Model):
    """One `{access, refresh}` pair as issued, in its family: a login starts a family, each
    refresh adds the successor pair to it. Reusing a rotated refresh token after the leeway
    revokes the whole family (halobestie/accounts/tokens.py); within it, the same successor is
    answered again (an app refreshing from two places at once must not log the person out)."""

    user = models.ForeignKey(User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+")
    family = models.UUIDField(_("token family"), db_index=True)
    refresh_jti = models.CharField(_("refresh token ID (jti)"), max_length=64, unique=True)
    access_jti = models.CharField(_("access token ID (jti)"), max_length=64)
    access_expires_at = models.DateTimeField(_("access token expires at"))
    # The pair as handed out: answered again to a refresh of its predecessor inside the leeway.
    access_token = models.TextField(_("access token"), blank=True)
    refresh_token = models.TextField(_("refresh token"), blank=True)
    successor = models.OneToOneField(
        "self",
        verbose_name=_("successor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    rotated_at = models.DateTimeField(_("rotated at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("token pair")
        verbose_name_plural = _("token pairs")


class RevokedAccessToken(models.Model):
    """An access token refused before it expires (logout, a reused refresh token): checked on
    every REST request and socket connect, in PostgreSQL only, so it holds while Valkey is down."""

    jti = models.CharField(_("token ID (jti)"), max_length=64, primary_key=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("revoked access token")
        verbose_name_plural = _("revoked access tokens")
