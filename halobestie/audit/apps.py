from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "halobestie.audit"
    label = "audit"
    verbose_name = "Audit"
