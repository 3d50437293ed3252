from django.conf import settings
from django.db import models
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
