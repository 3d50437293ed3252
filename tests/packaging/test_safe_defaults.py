"""Production defaults through the production launcher: `python -m halobestie.serve public` with
DEBUG=false and the `.env.example` values (secrets filled in) refuses to start without Xendit,
and with Xendit serves no local checkout and refuses every webhook without the configured token.
The staging escape hatch binds the local checkout to its session's client."""

import os
import re
import subprocess
import sys

import requests
from django.conf import settings
from django.core import signing

from payments.models import Payment, PaymentCallback, PaymentStatus
from sessions_app import lifecycle as sessions
from sessions_app.models import ChatSession, Status
from tests.servers import free_port, serve_process, server_env

SECRETS = {
    "DJANGO_SECRET_KEY": "pR7vQ2mX9kL4tW8zN3bJ6hF1dS5gA0yU7eC2iO9rT4wV8xB3nM6qK1jH5lP0sD2f",
    "AUTH_JWT_SECRET": "Ab3De5Gh7Jk9Lm1No3Pq5Rs7Tu9Vw1Xy3Za5Bc7De9Fg1Hi3Jk5Lm7No9Pq1Rs3",
}
XENDIT = {"XENDIT_SECRET_KEY": "xnd_development_safe_defaults", "XENDIT_WEBHOOK_TOKEN": "t0k3n-" + "q" * 30}
# What the test run itself needs to point the server at (its database, its Valkey prefixes).
RUN = ("DATABASE_URL", "VALKEY_URL", "VALKEY_KEY_PREFIX", "CHANNEL_LAYER_PREFIX", "PATH", "PYTHONUNBUFFERED")


def env_example():
    text = (settings.BASE_DIR / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))


def production_env(**overrides):
    """.env.example as shipped, the secrets filled in, DEBUG off, never the test mode."""
    test_env = server_env()
    env = {key: test_env[key] for key in RUN if key in test_env}
    env.update(env_example())
    env.update({key: test_env[key] for key in RUN if key in test_env})
    env.update(SECRETS, DEBUG="false", TESTING="false", DATABASE_POOL="false", DRAIN_SECONDS="0.2")
    env["PUSH_ENABLED"] = "false"  # no Firebase service account is mounted here
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def server_key(external_id):
    """The checkout key as the server (signing with its own DJANGO_SECRET_KEY) puts it in the
    invoice_url it hands to the session's client."""
    return signing.Signer(key=SECRETS["DJANGO_SECRET_KEY"], salt="payments.local_checkout").signature(
        external_id
    )


def _pending_payment(make_client_user):
    session = sessions.session_create(client=make_client_user(), package_code="curhat-15")
    return session, Payment.objects.get(session=session)


def _snapshot(session):
    session.refresh_from_db()
    payment = Payment.objects.get(session=session)
    return session.status, payment.status, PaymentCallback.objects.count()


def test_it_refuses_to_start_without_xendit_naming_the_variable():
    command = [sys.executable, "-m", "halobestie.serve", "public", "--host", "127.0.0.1", "--port"]
    result = subprocess.run(
        [*command, str(free_port())], env=production_env(), cwd=settings.BASE_DIR,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Environment variable XENDIT_SECRET_KEY must be set when DEBUG is off" in result.stderr

    result = subprocess.run(
        [*command, str(free_port())], env=production_env(XENDIT_SECRET_KEY="xnd_x"), cwd=settings.BASE_DIR,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Environment variable XENDIT_WEBHOOK_TOKEN must be set when DEBUG is off" in result.stderr


def test_it_serves_no_checkout_and_refuses_webhooks_without_the_token(
    transactional_db, make_client_user, tmp_path
):
    session, payment = _pending_payment(make_client_user)
    key = server_key(payment.external_id)
    before = _snapshot(session)
    assert before == (Status.PENDING_PAYMENT, PaymentStatus.PENDING, 0)
    paid = {"id": payment.invoice_id, "external_id": payment.external_id, "status": "PAID",
            "amount": payment.amount_idr, "paid_amount": payment.amount_idr}  # fmt: skip

    with serve_process("public", env=production_env(**XENDIT), log_path=tmp_path / "public.log") as (_, base):
        checkout = f"{base}/payment/checkout/{payment.external_id}?key={key}"
        assert requests.get(checkout, timeout=10).status_code == 404
        assert requests.post(checkout, data={"action": "pay"}, timeout=10).status_code in (403, 404)
        for token in (None, "", "local-checkout-token", "wrong", XENDIT["XENDIT_WEBHOOK_TOKEN"][:-1]):
            headers = {} if token is None else {"x-callback-token": token}
            answer = requests.post(f"{base}/webhooks/xendit/invoice", json=paid, headers=headers, timeout=10)
            assert answer.status_code == 401, (token, answer.text)
            assert answer.json()["error"]["code"] == "invalid_callback_token"
        assert _snapshot(session) == before


def test_it_binds_the_unsafe_local_checkout_to_the_sessions_client(
    transactional_db, make_client_user, tmp_path
):
    session, payment = _pending_payment(make_client_user)
    other_session, other_payment = _pending_payment(make_client_user)
    env = production_env(
        XENDIT_ENABLED="false", PAYMENTS_LOCAL_CHECKOUT_UNSAFE="true", SECURE_COOKIES="false"
    )
    log_path = tmp_path / "public.log"
    with serve_process("public", env=env, log_path=log_path) as (_, base):
        page = f"{base}/payment/checkout/{payment.external_id}"
        other_key = server_key(other_payment.external_id)
        for url in (page, f"{page}?key=", f"{page}?key={other_key}", f"{page}?key={other_key[:-1]}x"):
            assert requests.get(url, timeout=10).status_code == 404, url
            assert requests.post(url, data={"action": "pay"}, timeout=10).status_code in (403, 404)
        # No default webhook token exists: every callback is refused, the old built-in one too.
        for token in ("local-checkout-token", ""):
            body = {"id": payment.invoice_id, "external_id": payment.external_id, "status": "PAID",
                    "amount": payment.amount_idr}  # fmt: skip
            answer = requests.post(
                f"{base}/webhooks/xendit/invoice", json=body, headers={"x-callback-token": token}, timeout=10
            )
            assert answer.status_code == 401
        assert _snapshot(session) == (Status.PENDING_PAYMENT, PaymentStatus.PENDING, 0)
        assert _snapshot(other_session) == (Status.PENDING_PAYMENT, PaymentStatus.PENDING, 0)

        # The session's own client, through the invoice_url it was given, can pay (staging).
        browser = requests.Session()
        own = f"{page}?key={server_key(payment.external_id)}"
        form = browser.get(own, timeout=10)
        assert form.status_code == 200
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        paid = browser.post(
            own, data={"action": "pay", "csrfmiddlewaretoken": csrf}, headers={"Referer": own},
            allow_redirects=False, timeout=10,
        )  # fmt: skip
        assert paid.status_code == 302, paid.text
    assert ChatSession.objects.get(pk=session.pk).status == Status.MATCHING
    assert _snapshot(other_session) == (Status.PENDING_PAYMENT, PaymentStatus.PENDING, 1)
    log = log_path.read_text()
    assert "PAYMENTS_LOCAL_CHECKOUT_UNSAFE is on" in log


def test_it_allows_the_otp_bypass_only_with_phones_and_code_set(transactional_db, tmp_path):
    phone = "+6281299990042"
    base_env = production_env(**XENDIT, OTP_TEST_PHONES=phone)
    assert base_env["OTP_TEST_CODE"] == ""  # .env.example ships no code
    with serve_process("public", env=base_env, log_path=tmp_path / "a.log") as (_, base):
        answer = requests.post(f"{base}/api/v1/auth/otp/request", json={"phone": phone}, timeout=10)
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "otp_disabled")
        for code in ("123456", ""):
            verify = requests.post(f"{base}/api/v1/auth/otp/verify", json={"phone": phone, "code": code})
            assert verify.status_code in (400, 404), verify.text
    assert "OTP test bypass is on" not in (tmp_path / "a.log").read_text()

    env = dict(base_env, OTP_TEST_CODE="24681357")
    with serve_process("public", env=env, log_path=tmp_path / "b.log") as (_, base):
        assert requests.post(f"{base}/api/v1/auth/otp/request", json={"phone": phone}, timeout=10).ok
        login = requests.post(f"{base}/api/v1/auth/otp/verify", json={"phone": phone, "code": "24681357"})
        assert login.status_code == 200, login.text
    assert "OTP test bypass is on" in (tmp_path / "b.log").read_text()


def test_it_ships_no_bypass_in_env_example():
    values = env_example()
    assert values["OTP_TEST_PHONES"] == "" and values["OTP_TEST_CODE"] == ""
    assert values["PAYMENTS_LOCAL_CHECKOUT_UNSAFE"] == "false"
    assert values["XENDIT_WEBHOOK_TOKEN"] == ""
    assert "FORWARDED_ALLOW_IPS=*" not in (settings.BASE_DIR / ".env.example").read_text()
    assert os.environ.get("PAYMENTS_LOCAL_CHECKOUT_UNSAFE") in (None, "", "false")
