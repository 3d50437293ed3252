from django.apps import AppConfig


class RuntimeConfigApp(AppConfig):
    name = "halobestie.runtime"
    label = "runtime"
    verbose_name = "Konfigurasi runtime"

    def ready(self):
        from halobestie.runtime import fast
        from halobestie.server.lifespan import on_startup

        fast.register()  # GET /api/v1/config from process memory, before Django (issue 22)

        @on_startup
        async def listen_for_config_saves(listener):
            from halobestie.runtime.broadcast import start_listener

            start_listener()
