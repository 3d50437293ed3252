"""What the cutover from the Node backend leaves behind: which row came from which legacy row,
and which of the old backend's refresh tokens were already exchanged for ours."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class LegacyEntity(models.TextChoices):
    CLIENT = "client", _("Client")
    BESTIE = "bestie", _("Bestie")
    DEVICE = "device", _("Device")
    SESSION = "session", _("Session")
    PAYMENT = "payment", _("Payment")
    REFUND = "refund", _("Refund")
    EARNING = "earning", _("Earning")
    RATING = "rating", _("Rating")
    REPORT = "report", _("Report")


class LegacyRecord(models.Model):
    """One imported row: its legacy id (the old database's primary key) and our row's primary key.
    Unique per entity, so an import run twice creates nothing the second time. Messages have no
    record of their own: a message is (its session's legacy id, seq), unique in our table already.
    A Bestie's record points at the user (the mitra row hangs off it)."""

    entity = models.CharField(_("entity"), max_length=10, choices=LegacyEntity.choices)
    legacy_id = models.CharField(_("legacy ID"), max_length=64)
    object_id = models.CharField(_("our ID"), max_length=64)
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)

    class Meta:
        verbose_name = _("imported legacy row")
        verbose_name_plural = _("imported legacy rows")
        constraints = [
            models.UniqueConstraint(fields=["entity", "legacy_id"], name="legacy_record_unique"),
            models.UniqueConstraint(fields=["entity", "object_id"], name="legacy_record_object_unique"),
        ]

    def __str__(self):
        return f"{self.entity} {self.legacy_id} → {self.object_id}"


class LegacyRefreshExchange(models.Model):
    """An old backend's refresh token already exchanged for ours (only its SHA-256): each one is
    exchanged once, like our own rotating refresh tokens."""

    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    exchanged_at = models.DateTimeField(_("exchanged at"), auto_now_add=True)

    class Meta:
        verbose_name = _("exchanged legacy token")
        verbose_name_plural = _("exchanged legacy tokens")
