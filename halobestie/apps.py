from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HalobestieConfig(AppConfig):
    """The project package as an app: it hosts project-wide management commands (seed,
    run_scheduler) and the start-up checks."""

    name = "halobestie"
    verbose_name = _("HaloBestie")

    def ready(self):
        from halobestie.integrations import push

        # Here rather than in a system check: every process (manage.py, uvicorn, the scheduler)
        # must refuse a service account of another Firebase project, not only `manage.py check`.
        push.configure_from_settings()
        warn_about_unsafe_settings()
        from halobestie.server import inline_builtins  # noqa: F401 (registers its deploy check)
        from halobestie.server.lifespan import register_scheduler_tick

        # With SCHEDULER_IN_PROCESS the public listener runs the timers itself (lifespan.py).
        register_scheduler_tick(_run_scheduler_tick)


def _run_scheduler_tick():
    from halobestie import scheduler

    return scheduler.run_tick()


def warn_about_unsafe_settings():
    """Every process says at start-up, loudly, which deliberate production escape hatches are set
    (settings.py refuses them unless set on purpose)."""
    import logging

    from django.conf import settings

    logger = logging.getLogger("halobestie.settings")
    if settings.DEBUG:
        if not settings.TESTING:
            logger.warning("DEBUG is on: development mode, never in production")
        return
    if settings.PAYMENTS_LOCAL_CHECKOUT_UNSAFE:
        logger.warning(
            "PAYMENTS_LOCAL_CHECKOUT_UNSAFE is on: payments are NOT real, any session's client can "
            "mark it paid on the local checkout page (staging only)"
        )
    if not settings.FAZPASS_ENABLED and settings.OTP_TEST_CODE and settings.OTP_TEST_PHONES:
        logger.warning(
            "OTP test bypass is on: the phones in OTP_TEST_PHONES log in with OTP_TEST_CODE",
            extra={"otp_test_phones": len(settings.OTP_TEST_PHONES)},
        )
