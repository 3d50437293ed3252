"""What the cutover from the Node backend leaves behind: which row came from which legacy row,
and which of the old backend's refresh tokens were already exchanged for ours."""

from django.conf import settings
from django.db import models


class LegacyEntity(models.TextChoices):
    CLIENT = "client", "Klien"
    BESTIE = "bestie", "Bestie"
    DEVICE = "device", "Perangkat"
    SESSION = "session", "Sesi"
    PAYMENT = "payment", "Pembayaran"
    REFUND = "refund", "Refund"
    EARNING = "earning", "Pendapatan"
    RATING = "rating", "Rating"
    REPORT = "report", "Laporan"


class LegacyRecord(models.Model):
    """One imported row: its legacy id (the old database's primary key) and our row's primary key.
    Unique per entity, so an import run twice creates nothing the second time. Messages have no
    record of their own: a message is (its session's legacy id, seq), unique in our table already.
    A Bestie's record points at the user (the mitra row hangs off it)."""

    entity = models.CharField(max_length=10, choices=LegacyEntity.choices)
    legacy_id = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "baris impor lama"
        verbose_name_plural = "baris impor lama"
        constraints = [
            models.UniqueConstraint(fields=["entity", "legacy_id"], name="legacy_record_unique"),
            models.UniqueConstraint(fields=["entity", "object_id"], name="legacy_record_object_unique"),
        ]

    def __str__(self):
        return f"{self.entity} {self.legacy_id} → {self.object_id}"


class LegacyRefreshExchange(models.Model):
    """An old backend's refresh token already exchanged for ours (only its SHA-256): each one is
    exchanged once, like our own rotating refresh tokens."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    exchanged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "tukar token lama"
        verbose_name_plural = "tukar token lama"
