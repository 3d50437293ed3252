"""Public payment routes outside /api/v1/: the Xendit webhooks and the webview return pages."""

from django.urls import path

from payments import api, pages

urlpatterns = [
    path("webhooks/xendit/invoice", api.InvoiceCallbackApi.as_view(), name="xendit-invoice-callback"),
    path("webhooks/xendit/refund", api.RefundCallbackApi.as_view(), name="xendit-refund-callback"),
    path(
        "payment/return/success", pages.payment_return, {"status": "success"}, name="payment-return-success"
    ),
    path(
        "payment/return/failure", pages.payment_return, {"status": "failure"}, name="payment-return-failure"
    ),
    path("payment/checkout/<str:external_id>", pages.local_checkout, name="payment-local-checkout"),
]
