from django.apps import AppConfig


class HalobestieConfig(AppConfig):
    """The project package as an app: it hosts project-wide management commands (seed,
    run_scheduler) and the start-up checks."""

    name = "halobestie"
    verbose_name = "HaloBestie"
