"""A fake Fazpass: a real HTTP server on 127.0.0.1 (random port) speaking Fazpass' OTP
protocol, which our real client code (halobestie/integrations/otp.py) talks to through FAZPASS_BASE_URL."""

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

MERCHANT_KEY = "merchant-key-test"
GATEWAY_KEY = "gateway-key-test"


class FakeFazpass:
    def __init__(self):
        self.codes = {}  # otp_id -> code
        self.received = []  # (path, headers, body)
        self.fail_with = None  # an HTTP status to answer every request with
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.received.append((self.path, dict(self.headers), body))
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                if fake.fail_with:
                    return self._answer(fake.fail_with, {"status": False, "message": "Internal error"})
                if self.headers.get("Authorization") != f"Bearer {MERCHANT_KEY}":
                    return self._answer(401, {"status": False, "message": "Unauthorized", "code": "401"})
                if self.path == "/v1/otp/request":
                    if body.get("gateway_key") != GATEWAY_KEY:
                        return self._answer(400, {"status": False, "message": "Invalid gateway"})
                    otp_id, code = str(uuid.uuid4()), f"{secrets.randbelow(1_000_000):06d}"
                    with fake._lock:
                        fake.codes[otp_id] = code
                    return self._answer(
                        200,
                        {
                            "status": True,
                            "message": "Request Generated Successfully",
                            "code": "200000",
                            "data": {"id": otp_id, "otp": code, "otp_length": 6, "channel": "sms"},
                        },
                    )
                if self.path == "/v1/otp/verify":
                    right = fake.codes.get(body.get("otp_id")) == body.get("otp")
                    if right:
                        return self._answer(200, {"status": True, "message": "Verification Success"})
                    return self._answer(400, {"status": False, "message": "OTP not match", "code": "400002"})
                return self._answer(404, {"status": False, "message": "Not found"})

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def latest_code(self) -> str:
        """The code of the latest OTP this fake sent (what the user reads in the SMS)."""
        with self._lock:
            assert self.codes, "no OTP was requested"
            return list(self.codes.values())[-1]

    def paths(self):
        return [path for path, _, _ in self.received]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fazpass():
    fake = FakeFazpass()
    with override_settings(
        FAZPASS_ENABLED=True,
        FAZPASS_BASE_URL=fake.base_url,
        FAZPASS_MERCHANT_KEY=MERCHANT_KEY,
        FAZPASS_GATEWAY_KEY=GATEWAY_KEY,
        FAZPASS_TIMEOUT_SECONDS=0.5,
    ):
        yield fake
    fake.delay_seconds = 0
    fake.stop()


@pytest.fixture
def bypass():
    """The test bypass (FAZPASS_ENABLED=false) with one test phone and code 246810."""
    with override_settings(
        FAZPASS_ENABLED=False, OTP_TEST_PHONES=["+6281200000001"], OTP_TEST_CODE="246810", DEBUG=False
    ):
        yield


def request_otp(api, phone, **extra):
    return api.post("/api/v1/auth/otp/request", {"phone": phone}, format="json", **extra)


def verify_otp(api, phone, code, challenge_id=None):
    body = {"phone": phone, "code": code}
    if challenge_id is not None:
        body["challenge_id"] = str(challenge_id)
    return api.post("/api/v1/auth/otp/verify", body, format="json")
