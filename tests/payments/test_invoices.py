"""Opening invoices through the real client against the fake Xendit: the request Xendit gets,
and gateway failures that answer 502/503 and leave nothing behind."""

import base64
import threading
import time

from payments.models import Payment, PaymentStatus
from sessions_app.models import ChatSession, SessionEvent
from tests.payments.conftest import SECRET_KEY


def test_it_opens_a_xendit_invoice_when_a_session_is_created(xendit, create_session):
    response, client = create_session()
    assert response.status_code == 201, response.content
    body = response.json()

    [call] = xendit.calls("POST", "/v2/invoices/")
    assert call["headers"]["Authorization"] == "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
    assert call["json"] == {
        "external_id": f"hb-session-{body['id']}",
        "amount": 25000,
        "description": "HaloBestie: Curhat 30 menit",
        "invoice_duration": 900,
        "currency": "IDR",
        "success_redirect_url": "https://api.halobestie.test/payment/return/success",
        "failure_redirect_url": "https://api.halobestie.test/payment/return/failure",
    }
    payment = Payment.objects.get(session_id=body["id"])
    invoice = xendit.invoices[payment.invoice_id]
    assert (payment.kind, payment.status, payment.amount_idr, payment.package_code) == (
        "session", PaymentStatus.PENDING, 25000, "curhat-30",
    )  # fmt: skip
    assert payment.invoice_url == invoice["invoice_url"]
    assert payment.expires_at.isoformat().replace("+00:00", "Z")[:19] == invoice["expiry_date"][:19]
    assert body["status"] == "pending_payment"
    assert body["payment"]["invoice_url"] == invoice["invoice_url"]
    assert body["payment"]["amount_idr"] == 25000


def _nothing_stored():
    assert ChatSession.objects.count() == 0
    assert Payment.objects.count() == 0
    assert SessionEvent.objects.count() == 0


def test_it_answers_502_and_stores_nothing_when_xendit_fails(xendit, create_session):
    xendit.fail_status = 500
    response, _ = create_session()
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "payment_gateway_error"
    assert len(xendit.calls("POST", "/v2/invoices/")) == 1
    _nothing_stored()


def test_it_answers_503_within_the_timeout_and_stores_nothing_when_xendit_hangs(xendit, create_session):
    xendit.hang_seconds = 3
    started = time.monotonic()
    response, _ = create_session()
    assert time.monotonic() - started < 2.0
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payment_gateway_unavailable"
    _nothing_stored()


def test_it_answers_503_when_xendit_is_unreachable(xendit, create_session, settings):
    xendit.stop()
    settings.XENDIT_API_URL = "http://127.0.0.1:9"  # the discard port: connection refused
    response, _ = create_session()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "payment_gateway_unavailable"
    _nothing_stored()


def test_it_answers_502_to_an_answer_that_is_not_json(xendit, create_session):
    xendit.answer_garbage = True
    response, _ = create_session()
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "payment_gateway_error"
    _nothing_stored()


def test_it_answers_502_when_xendit_refuses_our_key(xendit, create_session, settings):
    settings.XENDIT_SECRET_KEY = "xnd_development_wrong"
    response, _ = create_session()
    assert response.status_code == 502
    _nothing_stored()


def test_it_expires_the_invoice_of_a_session_that_lost_the_race(transactional_db, xendit, make_client_user):
    """Two creations by one client at once: both open an invoice (outside the transaction), one
    session is stored, the loser's invoice is expired again."""
    from sessions_app import lifecycle

    client = make_client_user()
    xendit.hang_seconds = 0.2  # both requests are past the first check while Xendit answers
    results = []
    barrier = threading.Barrier(2)

    def create():
        from django.db import connection

        barrier.wait()
        try:
            results.append(lifecycle.session_create(client=client, package_code="curhat-15").id)
        except Exception as error:
            results.append(getattr(error, "code", repr(error)))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert "session_already_open" in results
    assert ChatSession.objects.filter(client=client).count() == 1
    opened = [r["json"]["external_id"] for r in xendit.calls("POST", "/v2/invoices/")]
    expired = [r["path"].split("/")[2] for r in xendit.calls("POST", "/invoices/")]
    stored = Payment.objects.get(session__client=client)
    assert len(opened) == 2
    assert len(expired) == 1
    assert stored.invoice_id not in expired
    assert all(xendit.invoices[invoice_id]["status"] == "EXPIRED" for invoice_id in expired)
