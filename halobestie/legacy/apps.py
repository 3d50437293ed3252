from django.apps import AppConfig


class LegacyConfig(AppConfig):
    name = "halobestie.legacy"
    label = "legacy"
    verbose_name = "Cutover dari backend lama"
