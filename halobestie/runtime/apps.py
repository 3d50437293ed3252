from django.apps import AppConfig


class RuntimeConfigApp(AppConfig):
    name = "halobestie.runtime"
    label = "runtime"
    verbose_name = "Konfigurasi runtime"
