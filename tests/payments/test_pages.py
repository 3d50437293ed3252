"""The webview return pages and the local checkout (XENDIT_ENABLED=false), which drives the very
same callback handler as Xendit's webhook."""

import re

import pytest
from django.test import Client

from payments.models import Payment, PaymentCallback, PaymentStatus
from payments.services import local_checkout_key
from sessions_app.models import ChatSession, Status
from tests.conftest import auth_client


@pytest.mark.parametrize(
    ("status", "title"), [("success", "Pembayaran berhasil"), ("failure", "Pembayaran belum berhasil")]
)
def test_it_sends_the_webview_back_to_the_app(status, title, settings):
    settings.APP_DEEP_LINK_SCHEME = "mybestie"
    response = Client().get(f"/payment/return/{status}")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<h1>{title}</h1>" in html
    assert '<html lang="id">' in html
    assert f'<a class="button" id="back" href="mybestie://payment/{status}">Kembali ke aplikasi</a>' in html
    assert f'"mybestie://payment/{status}"</script>' in html  # the automatic redirect's target


def test_it_uses_the_configured_deep_link_scheme(settings):
    settings.APP_DEEP_LINK_SCHEME = "halobestie-dev"
    assert b'href="halobestie-dev://payment/success"' in Client().get("/payment/return/success").content


def test_it_answers_404_for_other_return_statuses():
    assert Client().get("/payment/return/maybe").status_code == 404


def _create(client_user):
    response = auth_client(client_user).post("/api/v1/sessions", {"package": "curhat-30"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _checkout_form(browser, invoice_url, settings):
    path = invoice_url.removeprefix(settings.PUBLIC_BASE_URL)
    page = browser.get(path)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return path, page, token


def test_it_takes_a_client_from_post_sessions_to_matching_through_the_local_checkout(
    make_client_user, settings
):
    assert settings.XENDIT_ENABLED is False
    body = _create(make_client_user())
    invoice_url = body["payment"]["invoice_url"]
    external_id = f"hb-session-{body['id']}"
    key = local_checkout_key(external_id=external_id)
    assert invoice_url == f"{settings.PUBLIC_BASE_URL}/payment/checkout/{external_id}?key={key}"

    browser = Client(enforce_csrf_checks=True)
    path, page, token = _checkout_form(browser, invoice_url, settings)
    html = page.content.decode()
    assert "Rp25.000" in html and ">Bayar</button>" in html and ">Gagal</button>" in html

    response = browser.post(path, {"action": "pay", "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/payment/return/success")

    session = ChatSession.objects.get(pk=body["id"])
    payment = Payment.objects.get(session=session)
    assert session.status == Status.MATCHING
    assert (payment.status, payment.payment_method, payment.payment_channel) == (
        PaymentStatus.PAID, "LOCAL", "LOCAL_CHECKOUT",
    )  # fmt: skip
    # the same handler as Xendit's webhook: the callback is stored like theirs
    callback = PaymentCallback.objects.get()
    assert (callback.kind, callback.status, callback.outcome, callback.headers) == (
        "invoice", "PAID", "applied", {"user-agent": "local-checkout"},
    )  # fmt: skip
    assert callback.body["external_id"] == payment.external_id
    # paid: the page shows the status, no buttons; a second "Bayar" changes nothing
    assert b"Bayar</button>" not in browser.get(path).content
    browser.post(path, {"action": "pay", "csrfmiddlewaretoken": token})
    assert PaymentCallback.objects.count() == 1


def test_it_cancels_the_session_on_gagal(make_client_user, settings):
    body = _create(make_client_user())
    browser = Client(enforce_csrf_checks=True)
    path, _, token = _checkout_form(browser, body["payment"]["invoice_url"], settings)
    response = browser.post(path, {"action": "fail", "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/payment/return/failure")
    session = ChatSession.objects.get(pk=body["id"])
    assert (session.status, session.end_reason) == (Status.CANCELLED, "payment_expired")
    assert Payment.objects.get(session=session).status == PaymentStatus.FAILED


def test_it_refuses_the_checkout_form_without_its_csrf_token(make_client_user, settings):
    body = _create(make_client_user())
    path = body["payment"]["invoice_url"].removeprefix(settings.PUBLIC_BASE_URL)
    response = Client(enforce_csrf_checks=True).post(path, {"action": "pay"})
    assert response.status_code == 403
    assert ChatSession.objects.get(pk=body["id"]).status == Status.PENDING_PAYMENT


def test_it_answers_404_for_an_unknown_checkout():
    assert Client().get("/payment/checkout/hb-session-nope").status_code == 404
    key = local_checkout_key(external_id="hb-session-nope")
    assert Client().get(f"/payment/checkout/hb-session-nope?key={key}").status_code == 404


def test_it_opens_the_checkout_only_with_the_key_of_its_invoice_url(make_client_user, settings):
    """Only the session's client has its invoice_url: without the key, or with another
    payment's, the page does not exist and "Bayar" changes nothing."""
    body = _create(make_client_user())
    other = _create(make_client_user())
    external_id = f"hb-session-{body['id']}"
    other_key = local_checkout_key(external_id=f"hb-session-{other['id']}")
    browser = Client()
    for query in ("", "?key=", f"?key={other_key}", "?key=" + "A" * 43):
        assert browser.get(f"/payment/checkout/{external_id}{query}").status_code == 404
        assert browser.post(f"/payment/checkout/{external_id}{query}", {"action": "pay"}).status_code == 404
    assert ChatSession.objects.get(pk=body["id"]).status == Status.PENDING_PAYMENT
    assert PaymentCallback.objects.count() == 0


def test_it_hides_the_local_checkout_when_xendit_is_enabled(xendit, make_client_user):
    body = _create(make_client_user())
    payment = Payment.objects.get(session_id=body["id"])
    browser = Client()
    assert browser.get(f"/payment/checkout/{payment.external_id}").status_code == 404
    assert browser.post(f"/payment/checkout/{payment.external_id}", {"action": "pay"}).status_code == 404
    assert ChatSession.objects.get(pk=body["id"]).status == Status.PENDING_PAYMENT


def test_it_expires_a_forgotten_local_checkout(make_client_user):
    from datetime import timedelta

    from django.utils import timezone

    from payments.services import payments_expire_due

    body = _create(make_client_user())
    payment = Payment.objects.get(session_id=body["id"])
    assert payments_expire_due(now=payment.expires_at + timedelta(seconds=119)) == 0
    assert payments_expire_due(now=payment.expires_at + timedelta(seconds=121)) == 1
    assert payments_expire_due(now=timezone.now() + timedelta(days=1)) == 0
    session = ChatSession.objects.get(pk=body["id"])
    assert (session.status, session.end_reason) == (Status.CANCELLED, "payment_expired")
    assert PaymentCallback.objects.get().headers == {"user-agent": "halobestie-reconciler"}


def test_it_reconciles_a_xendit_invoice_whose_callback_was_lost(xendit, make_client_user):
    from datetime import timedelta

    from payments.services import payments_expire_due

    body = _create(make_client_user())
    payment = Payment.objects.get(session_id=body["id"])
    xendit.invoices[payment.invoice_id].update(status="PAID", paid_amount=25000, payment_method="EWALLET")
    assert payments_expire_due(now=payment.expires_at + timedelta(seconds=121)) == 1
    assert ChatSession.objects.get(pk=body["id"]).status == Status.MATCHING
    assert xendit.calls("GET", f"/v2/invoices/{payment.invoice_id}")
