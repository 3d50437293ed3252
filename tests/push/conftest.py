"""A fake FCM for the real firebase-admin: a local HTTP server (thread, random port) that answers
Google's OAuth2 token exchange and the FCM v1 `messages:send` endpoint.

The service-account dict's `token_uri` points at the fake. firebase-admin has no supported hook for
the FCM endpoint, so the tests set `firebase_admin.messaging._MessagingService.FCM_URL` (the class
attribute every messaging service formats its send URL from, in `__init__`) through monkeypatch
before the app's messaging service is created; `raising=True` makes a rename in a later
firebase-admin fail these tests loudly instead of sending elsewhere.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import messaging

from halobestie.integrations import push

PROJECT_ID = "hb-test-project"
ACCESS_TOKEN = "fake-access-token-123"
_private_key_pem = None


def private_key_pem():
    global _private_key_pem
    if _private_key_pem is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return _private_key_pem


def service_account(*, token_uri, project_id=PROJECT_ID):
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "0123456789abcdef",
        "private_key": private_key_pem(),
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


def fcm_error(status_code, status, error_code=None, message="error", extra_details=()):
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    details = (details if error_code else []) + list(extra_details)
    return status_code, {
        "error": {"code": status_code, "message": message, "status": status, "details": details}
    }


UNREGISTERED = fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
SENDER_ID_MISMATCH = fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch")
INVALID_TOKEN = fcm_error(
    400,
    "INVALID_ARGUMENT",
    "INVALID_ARGUMENT",
    "The registration token is not a valid FCM registration token",
    [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {
                    "field": "message.token",
                    "description": "The registration token is not a valid FCM registration token",
                }
            ],
        }
    ],
)
INVALID_PAYLOAD = fcm_error(
    400,
    "INVALID_ARGUMENT",
    "INVALID_ARGUMENT",
    "Invalid value at 'message.data[0].value'",
    [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value"}],
        }
    ],
)
QUOTA_EXCEEDED = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")


class FakeFcm:
    """Records every message it is sent; `answers[token]` = (status, body) overrides success,
    `delay_seconds` makes every send slow (recorded before the wait)."""

    def __init__(self):
        self.received = []
        self.token_exchanges = 0
        self.answers = {}
        self.delay_seconds = 0
        self._condition = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/token":
                    form = parse_qs(raw.decode())
                    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
                    with fake._condition:
                        fake.token_exchanges += 1
                    return self._answer(
                        200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
                    )
                if self.path == f"/v1/projects/{PROJECT_ID}/messages:send":
                    body = json.loads(raw)
                    with fake._condition:
                        fake.received.append(
                            {"authorization": self.headers.get("Authorization"), "body": body}
                        )
                        number = len(fake.received)
                        fake._condition.notify_all()
                    if fake.delay_seconds:
                        time.sleep(fake.delay_seconds)
                    token = body["message"].get("token")
                    status, answer = fake.answers.get(
                        token, (200, {"name": f"projects/{PROJECT_ID}/messages/{number}"})
                    )
                    return self._answer(status, answer)
                return self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no"}})

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a sleeping handler never holds up shutdown
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def messages(self):
        with self._condition:
            return [entry["body"]["message"] for entry in self.received]

    def wait_for(self, count, timeout=10):
        with self._condition:
            return self._condition.wait_for(lambda: len(self.received) >= count, timeout)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port_url():
    """An address where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fake_fcm():
    fake = FakeFcm()
    yield fake
    fake.stop()


@pytest.fixture
def use_fcm(fake_fcm, tmp_path, monkeypatch):
    """Switch this process to the real FCM sender, against the fake. Call it with
    `fcm_url=` to point the messaging endpoint elsewhere (e.g. a closed port)."""

    def configure(*, fcm_url=None, timeout_seconds=2.0, queue_size=push.QUEUE_SIZE):
        base = fcm_url or fake_fcm.url
        monkeypatch.setattr(
            messaging._MessagingService, "FCM_URL", base + "/v1/projects/{0}/messages:send", raising=True
        )
        path = tmp_path / "service-account.json"
        path.write_text(json.dumps(service_account(token_uri=f"{fake_fcm.url}/token")))
        push.configure(
            service_account_path=str(path),
            project_id=PROJECT_ID,
            timeout_seconds=timeout_seconds,
            queue_size=queue_size,
        )
        return fake_fcm

    yield configure
    # Wait for the worker to finish (slow-FCM tests use short timeouts), so that no push of this
    # test reaches the next one or logs after the run.
    push.shutdown(timeout=20)
