from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RuntimeConfigApp(AppConfig):
    name = "halobestie.runtime"
    label = "runtime"
    verbose_name = _("Runtime config")

    def ready(self):
        from halobestie.runtime import fast
        from halobestie.server.lifespan import on_startup

        fast.register()  # GET /api/v1/config from process memory, before Django (issue 22)

        @on_startup
        async def listen_for_config_saves(listener):
            from halobestie.runtime.broadcast import start_listener

            start_listener()
