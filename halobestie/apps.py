from django.apps import AppConfig


class HalobestieConfig(AppConfig):
    """The project package as an app: it hosts project-wide management commands (seed,
    run_scheduler) and the start-up checks."""

    name = "halobestie"
    verbose_name = "HaloBestie"

    def ready(self):
        from halobestie.integrations import push

        # Here rather than in a system check: every process (manage.py, uvicorn, the scheduler)
        # must refuse a service account of another Firebase project, not only `manage.py check`.
        push.configure_from_settings()
