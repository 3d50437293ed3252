from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = _("Payments")

    def ready(self):
        from halobestie.accounts.hooks import on_client_erasing
        from payments.privacy import client_payer_data_erase

        # A client erased their account: payer fields in their callbacks go too (same transaction).
        on_client_erasing(client_payer_data_erase)
