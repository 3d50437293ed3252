from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RuntimeConfig(models.Model):
    """The one row of runtime config (id=1). `values` is validated by runtime.schema on every
    save through `runtime_config_update`; `version` grows by one per save."""

    values = models.JSONField(_("values"), default=dict)
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("updated by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("runtime config")
        verbose_name_plural = _("runtime config")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="runtime_config_singleton")]

    def __str__(self):
        return f"Konfigurasi runtime v{self.version}"


class RuntimeConfigChange(models.Model):
    """One saved version of the runtime config: the whole values as saved, who saved them, when,
    and what changed against the version before (`diff`: key → [before, after]). Written by
    `runtime.services` with every save and rollback; never edited."""

    version = models.PositiveIntegerField(_("version"), unique=True)
    values = models.JSONField(_("values"))
    diff = models.JSONField(_("changes"), default=dict, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("changed by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )  # fmt: skip
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now, db_index=True)
    # Set when this version restored an earlier one (a rollback).
    restored_version = models.PositiveIntegerField(_("restores version"), null=True, blank=True)

    class Meta:
        verbose_name = _("runtime config change")
        verbose_name_plural = _("runtime config changes")
        ordering = ["-version"]

    def __str__(self):
        return _("Runtime config v%(version)s") % {"version": self.version}
