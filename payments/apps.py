from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Pembayaran"

    def ready(self):
        from halobestie.accounts.hooks import on_client_erasing
        from payments.privacy import client_payer_data_erase

        # A client erased their account: payer fields in their callbacks go too (same transaction).
        on_client_erasing(client_payer_data_erase)
