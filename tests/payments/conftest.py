"""A fake Xendit for the real client code: a local HTTP server (thread, random port) that speaks
the Invoice and Refund APIs as far as we use them, checks Basic auth, records every request, and
can be told to answer 500, to answer garbage, or to hang past our timeout."""

import base64
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import auth_client

SECRET_KEY = "xnd_development_fake_secret"
CALLBACK_TOKEN = "fake-callback-token-0123456789"


class FakeXendit:
    def __init__(self):
        self.requests = []  # {"method", "path", "headers", "json"}
        self.invoices = {}
        self.refunds = {}  # idempotency key → refund
        self.fail_status = None  # answer every request with this status
        self.answer_garbage = False
        self.hang_seconds = 0.0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def _handle(self, method):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                with fake._lock:
                    fake.requests.append(
                        {"method": method, "path": self.path, "headers": dict(self.headers), "json": body}
                    )
                if fake.hang_seconds:
                    time.sleep(fake.hang_seconds)
                expected = "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._answer(401, {"error_code": "INVALID_API_KEY", "message": "bad key"})
                if fake.fail_status:
                    return self._answer(fake.fail_status, {"error_code": "SERVER_ERROR", "message": "x"})
                if fake.answer_garbage:
                    return self._answer(200, None, raw=b"<html>oops</html>")
                status, answer = fake.route(method, self.path, body, self.headers)
                self._answer(status, answer)

            def _answer(self, status, body, raw=None):
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def route(self, method, path, body, headers):
        with self._lock:
            if method == "POST" and path == "/v2/invoices/":
                number = next(self._ids)
                invoice_id = f"inv-fake-{number:04d}"
                expiry = datetime.now(UTC) + timedelta(seconds=body["invoice_duration"])
                invoice = {
                    "id": invoice_id,
                    "external_id": body["external_id"],
                    "user_id": "fake-business",
                    "status": "PENDING",
                    "merchant_name": "HaloBestie",
                    "amount": body["amount"],
                    "description": body["description"],
                    "currency": body["currency"],
                    "invoice_url": f"https://checkout.fake.xendit.test/web/{invoice_id}",
                    "expiry_date": expiry.isoformat().replace("+00:00", "Z"),
                    "success_redirect_url": body["success_redirect_url"],
                    "failure_redirect_url": body["failure_redirect_url"],
                }
                self.invoices[invoice_id] = invoice
                return 200, invoice
            if method == "GET" and path.startswith("/v2/invoices/"):
                invoice = self.invoices.get(path.rsplit("/", 1)[1])
                return (200, invoice) if invoice else (404, {"error_code": "INVOICE_NOT_FOUND_ERROR"})
            if method == "POST" and path.startswith("/invoices/") and path.endswith("/expire!"):
                invoice = self.invoices.get(path.split("/")[2])
                if invoice is None:
                    return 404, {"error_code": "INVOICE_NOT_FOUND_ERROR"}
                invoice["status"] = "EXPIRED"
                return 200, invoice
            if method == "POST" and path == "/refunds":
                key = headers.get("idempotency-key")
                if not key:
                    return 400, {"error_code": "API_VALIDATION_ERROR"}
                if key in self.refunds:  # the same key: the same refund, never a second one
                    return 200, self.refunds[key]
                refund = {
                    "id": f"rfd-fake-{next(self._ids):04d}",
                    "invoice_id": body["invoice_id"],
                    "reference_id": body["reference_id"],
                    "amount": body["amount"],
                    "currency": body["currency"],
                    "reason": body["reason"],
                    "status": "PENDING",
                    "metadata": body.get("metadata"),
                }
                self.refunds[key] = refund
                return 200, refund
            return 404, {"error_code": "NOT_FOUND"}

    def paid_callback(self, invoice_id, *, status="PAID", amount=None, **extra):
        """The body Xendit posts to the invoice webhook when the invoice is paid."""
        invoice = self.invoices[invoice_id]
        amount = invoice["amount"] if amount is None else amount
        return {
            "id": invoice_id,
            "external_id": invoice["external_id"],
            "user_id": invoice["user_id"],
            "is_high": False,
            "payment_method": "QR_CODE",
            "status": status,
            "merchant_name": "HaloBestie",
            "amount": amount,
            "paid_amount": amount,
            "paid_at": "2026-01-02T03:04:05.000Z",
            "payer_email": None,
            "description": invoice["description"],
            "currency": "IDR",
            "payment_channel": "QRIS",
            "created": "2026-01-02T03:00:00.000Z",
            "updated": "2026-01-02T03:04:06.000Z",
            **extra,
        }

    def expired_callback(self, invoice_id):
        invoice = self.invoices[invoice_id]
        return {
            "id": invoice_id, "external_id": invoice["external_id"], "user_id": invoice["user_id"],
            "status": "EXPIRED", "merchant_name": "HaloBestie", "amount": invoice["amount"],
            "currency": "IDR", "created": "2026-01-02T03:00:00.000Z", "updated": "2026-01-02T03:15:00.000Z",
        }  # fmt: skip

    def refund_callback(self, key, *, status="SUCCEEDED"):
        refund = self.refunds[key]
        return {
            "event": f"refund.{status.lower()}",
            "business_id": "fake-business",
            "created": "2026-01-02T04:00:00.000Z",
            "data": {**refund, "status": status, "payment_method_type": "QR_CODE", "channel_code": "QRIS"},
        }

    def calls(self, method, prefix):
        return [r for r in self.requests if r["method"] == method and r["path"].startswith(prefix)]


@pytest.fixture
def xendit(settings):
    """Xendit enabled and pointed at a fresh fake."""
    fake = FakeXendit()
    settings.XENDIT_ENABLED = True
    settings.XENDIT_API_URL = fake.url
    settings.XENDIT_SECRET_KEY = SECRET_KEY
    settings.XENDIT_WEBHOOK_TOKEN = CALLBACK_TOKEN
    settings.XENDIT_TIMEOUT_SECONDS = 0.5
    settings.PUBLIC_BASE_URL = "https://api.halobestie.test"
    settings.XENDIT_SUCCESS_REDIRECT_URL = "https://api.halobestie.test/payment/return/success"
    settings.XENDIT_FAILURE_REDIRECT_URL = "https://api.halobestie.test/payment/return/failure"
    yield fake
    fake.stop()


@pytest.fixture
def post_callback(api):
    """POST a callback body to our webhook as Xendit does."""

    def post(body, *, path="/webhooks/xendit/invoice", token=CALLBACK_TOKEN):
        headers = {"HTTP_USER_AGENT": "Xendit-Callback/1.0"}
        if token is not None:
            headers["HTTP_X_CALLBACK_TOKEN"] = token
        return api.post(path, body, format="json", **headers)

    return post


@pytest.fixture
def create_session(make_client_user):
    """POST /api/v1/sessions as a fresh client; returns (response, client user)."""

    def create(package="curhat-30", client=None):
        client = client or make_client_user()
        response = auth_client(client).post("/api/v1/sessions", {"package": package}, format="json")
        return response, client

    return create
