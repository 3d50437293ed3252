"""The Bestie (mitra): a public profile, presence and capacity.

Presence decisions are made on these columns in Postgres (`is_online`, `deactivated_at`), under
row locks; Valkey mirrors them for fast reads (mitras/mirror.py).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Gender(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")
    UNSPECIFIED = "unspecified", _("Not stated")


class RestReason(models.TextChoices):
    CRISIS = "crisis", _("Cool-down after a crisis session")
    BREAK = "break", _("Break after many sessions in a row")


class Mitra(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="mitra"
    )
    display_name = models.CharField(_("Bestie name"), max_length=100)
    bio = models.TextField(_("bio"), blank=True)
    avatar_url = models.URLField(_("avatar URL"), blank=True)
    topics = models.JSONField(
        _("topics"), default=list, blank=True, help_text=_("A list of topics, e.g. ['family', 'work'].")
    )
    languages = models.JSONField(
        _("languages"), default=list, blank=True, help_text=_("Language codes, e.g. ['id', 'en'].")
    )
    gender = models.CharField(_("gender"), max_length=12, choices=Gender.choices, default=Gender.UNSPECIFIED)
    capacity = models.PositiveSmallIntegerField(_("capacity"), default=3)
    # Sessions occupying the mitra now (offered + active): changed with F() by the sessions
    # services in the transaction that changes them (mitras/load.py). Never set by hand.
    load = models.PositiveIntegerField(_("load"), default=0, editable=False)
    is_online = models.BooleanField(_("online"), default=False)
    online_since = models.DateTimeField(_("online since"), null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat at"), null=True, blank=True)
    # When the mitra last got a session offered; ties in assignment go to the one idle longest.
    last_assigned_at = models.DateTimeField(_("last assigned at"), null=True, blank=True)
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True)
    # Rest (mitras/rest.py): no offers until `rest_until`, after a crisis-flagged session
    # (`rest_reason` "crisis") or a long run of sessions ("break"). Written only by
    # `rest.mitra_session_finished`, in the transaction that ends a session.
    rest_until = models.DateTimeField(_("resting until"), null=True, blank=True)
    rest_reason = models.CharField(
        _("rest reason"), max_length=16, blank=True, default="", db_default="", choices=RestReason.choices
    )
    sessions_in_row = models.PositiveSmallIntegerField(
        _("sessions in a row"), default=0, db_default=0, editable=False
    )
    last_session_ended_at = models.DateTimeField(
        _("last session ended at"), null=True, blank=True, editable=False
    )
    rating_count = models.PositiveIntegerField(_("number of ratings"), default=0)
    rating_sum = models.PositiveIntegerField(_("sum of ratings"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("Bestie")
        verbose_name_plural = _("Besties")
        indexes = [models.Index(fields=["is_online", "deactivated_at"], name="mitra_presence_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(capacity__gte=1), name="mitra_capacity_positive")
        ]

    def __str__(self):
        return self.display_name

    @property
    def is_deactivated(self):
        return self.deactivated_at is not None

    @property
    def rating_average(self):
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None


class Favourite(models.Model):
    """A client's favourite Bestie: preferred in assignment; with `notify_online` the client gets
    (at most once a day) a push when the Bestie comes online."""

    client = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("client"),
        on_delete=models.CASCADE,
        related_name="favourites",
    )
    mitra = models.ForeignKey(
        Mitra, verbose_name=_("Bestie"), on_delete=models.CASCADE, related_name="favourited_by"
    )
    notify_online = models.BooleanField(_("notify when online"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("favourite Bestie")
        verbose_name_plural = _("favourite Besties")
        constraints = [models.UniqueConstraint(fields=["client", "mitra"], name="favourite_once_per_pair")]


class FavouriteOnlinePush(models.Model):
    """The day (Asia/Jakarta) a client last got a 'your favourite is online' push: one row per
    client and day, so the unique constraint is the once-a-day limit even across instances."""

    client = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("client"), on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField(_("day (Asia/Jakarta)"))
    mitra = models.ForeignKey(Mitra, verbose_name=_("Bestie"), on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(_("sent at"))

    class Meta:
        verbose_name = _("favourite online push")
        verbose_name_plural = _("favourite online pushes")
        constraints = [models.UniqueConstraint(fields=["client", "day"], name="favourite_push_once_a_day")]


class WorkingHours(models.Model):
    """One weekly interval a Bestie works, in Asia/Jakarta wall-clock time (mitras/schedule.py).

    `weekday` is ISO 8601 (1 Monday … 7 Sunday, as Dart's `DateTime.weekday`); the interval is
    [`start_minute`, `end_minute`) in minutes from midnight, `end_minute` up to 1440 (24:00).
    Hours past midnight are two rows (Monday 22:00–24:00, Tuesday 00:00–02:00). Replaced as a whole
    by `schedule.working_hours_replace`, which refuses overlaps."""

    mitra = models.ForeignKey(
        Mitra, on_delete=models.CASCADE, related_name="working_hours", verbose_name=_("Bestie")
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"))
    start_minute = models.PositiveSmallIntegerField(_("start (minutes from midnight)"))
    end_minute = models.PositiveSmallIntegerField(_("end (minutes from midnight)"))

    class Meta:
        verbose_name = _("working hours")
        verbose_name_plural = _("working hours")
        ordering = ["mitra", "weekday", "start_minute"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weekday__gte=1, weekday__lte=7), name="working_hours_iso_weekday"
            ),
            models.CheckConstraint(
                condition=models.Q(start_minute__lt=models.F("end_minute"), end_minute__lte=1440),
                name="working_hours_start_before_end",
            ),
        ]
        indexes = [models.Index(fields=["weekday", "start_minute"], name="working_hours_weekday_idx")]

    def __str__(self):
        return f"{self.weekday} {self.start_minute}–{self.end_minute}"
