from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MitrasConfig(AppConfig):
    name = "mitras"
    verbose_name = _("Besties (mitras)")

    def ready(self):
        from halobestie.server.lifespan import on_startup
        from mitras import mirror  # connects the mirror's signals

        # Seed the Valkey mirror from Postgres when a server starts, then watch for reconnects.
        on_startup(mirror.on_server_start)

        # The beacon answered from process memory before Django (issue 22).
        from mitras import beacon

        beacon.register()
