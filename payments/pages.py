"""HTML pages of the public listener: the webview return pages and the local checkout."""

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from payments import selectors, services
from payments.models import PaymentStatus

RETURN_TEXTS = {
    "success": (
        "Pembayaran berhasil",
        "Terima kasih! Pembayaranmu sudah kami terima. Kami sedang mencarikan Bestie untukmu.",
    ),
    "failure": (
        "Pembayaran belum berhasil",
        "Pembayaranmu gagal atau dibatalkan. Silakan coba lagi dari aplikasi.",
    ),
}


@require_GET
def payment_return(request, status):
    """Where Xendit sends the payer back: leave the webview for the app through its deep link,
    with a button in case the automatic redirect is blocked."""
    title, text = RETURN_TEXTS[status]
    return render(
        request,
        "payments/return.html",
        {
            "status": status,
            "title": title,
            "text": text,
            "deep_link": f"{settings.APP_DEEP_LINK_SCHEME}://payment/{status}",
        },
    )


@require_http_methods(["GET", "POST"])
def local_checkout(request, external_id):
    """XENDIT_ENABLED=false only (DEBUG, or PAYMENTS_LOCAL_CHECKOUT_UNSAFE): a stand-in for
    Xendit's invoice page. "Bayar" and "Gagal" send a Xendit-shaped callback through the same
    handler as the real webhook. Only with the signed `key` of the invoice_url the session's
    client received: without it (or with another payment's) the page does not exist (404)."""
    if settings.XENDIT_ENABLED:
        raise Http404()
    if not services.local_checkout_key_is_valid(external_id=external_id, key=request.GET.get("key")):
        raise Http404()
    payment = selectors.payment_by_external_id(external_id=external_id)
    if payment is None:
        raise Http404()
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ("pay", "fail"):
            return render(
                request, "payments/checkout.html", _checkout_context(payment, error=True), status=400
            )
        if payment.status == PaymentStatus.PENDING:
            services.local_checkout_complete(external_id=external_id, is_paid=action == "pay")
        return redirect("payment-return-success" if action == "pay" else "payment-return-failure")
    return render(request, "payments/checkout.html", _checkout_context(payment))


def _checkout_context(payment, **extra):
    return {"payment": payment, "amount_text": f"Rp{payment.amount_idr:,}".replace(",", "."), **extra}
