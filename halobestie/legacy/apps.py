from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LegacyConfig(AppConfig):
    name = "halobestie.legacy"
    label = "legacy"
    verbose_name = _("Cutover from the old backend")
