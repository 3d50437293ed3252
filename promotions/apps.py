from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PromotionsConfig(AppConfig):
    name = "promotions"
    verbose_name = _("Promotions")

    def ready(self):
        from halobestie.accounts.hooks import on_client_phone_erasing
        from promotions.services import phone_mark_on_erasure

        # A client erasing their account leaves a keyed hash of the phone if they ever had a
        # session, so a new account on the same phone is not "first session" again.
        on_client_phone_erasing(phone_mark_on_erasure)

        from payments.hooks import on_payment_settled
        from promotions.services import redemptions_on_payment_settled

        # An invoice paid consumes its voucher use; expired or failed, gives it back to the code.
        on_payment_settled(redemptions_on_payment_settled)
