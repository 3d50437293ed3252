from django.apps import AppConfig


class MitrasConfig(AppConfig):
    name = "mitras"
    verbose_name = "Mitra (Bestie)"
