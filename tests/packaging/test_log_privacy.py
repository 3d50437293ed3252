"""A real flow through the production launcher, then the captured logs are scanned: no message
body, OTP code, ticket or token may appear, and every line is JSON with the request id.

To extend it when a new flow lands (payments, devices): do the flow in `_flow`, and add every
secret it handles (codes, tokens it returns, bodies) to `secrets`.
"""

import json
import random
import uuid

import requests

from halobestie.accounts.tokens import tokens_for
from tests.realtime.conftest import Socket
from tests.servers import serve_process, server_env

OTP_PHONE = "+6281299990001"
OTP_CODE = f"{random.SystemRandom().randrange(10**7, 10**8)}"  # 8 digits: no accidental match


def _otp_login(base, secrets):
    """Phone OTP login through the test bypass (OTP_TEST_PHONES/OTP_TEST_CODE), a wrong code, a
    refresh and a logout: the code and every token must stay out of the logs."""
    secrets.append(OTP_CODE)
    assert requests.post(f"{base}/api/v1/auth/otp/request", json={"phone": OTP_PHONE}, timeout=10).ok
    wrong = requests.post(f"{base}/api/v1/auth/otp/verify", json={"phone": OTP_PHONE, "code": "00000000"})
    assert wrong.status_code == 400
    login = requests.post(
        f"{base}/api/v1/auth/otp/verify", json={"phone": OTP_PHONE, "code": OTP_CODE}, timeout=10
    )
    assert login.status_code == 200, login.text
    tokens = login.json()
    secrets += [tokens["access"], tokens["refresh"]]
    refreshed = requests.post(
        f"{base}/api/v1/auth/token/refresh", json={"refresh": tokens["refresh"]}, timeout=10
    )
    assert refreshed.status_code == 200, refreshed.text
    secrets += [refreshed.json()["access"], refreshed.json()["refresh"]]


def _flow(base, session, client, mitra, secrets):
    client_tokens, mitra_tokens = tokens_for(client), tokens_for(mitra.user)
    secrets += [client_tokens["access"], client_tokens["refresh"], mitra_tokens["access"]]
    auth = {"Authorization": f"Bearer {client_tokens['access']}", "X-Request-ID": "flow-1"}

    # A one-use ticket for the socket, sent in the query string as the apps do.
    ticket = requests.post(f"{base}/api/v1/realtime/ticket", headers=auth, timeout=10).json()["ticket"]
    secrets.append(ticket)
    # Letters only: a hex run such as "04447229795…" is a phone number to the contact masking.
    body = f"rahasia curhat {_letters()}"
    reply = f"balasan bestie {_letters()}"
    secrets += [body, reply]
    with Socket(base, ticket=ticket) as c, Socket(base, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        sent = c.send_message(session.id, body)
        c.expect_type("message.ack", client_msg_id=sent)
        assert m.expect_type("message.new", client_msg_id=sent)["body"] == body
        answered = m.send_message(session.id, reply)
        assert c.expect_type("message.new", client_msg_id=answered)["body"] == reply
    history = requests.get(f"{base}/api/v1/sessions/{session.id}/messages", headers=auth, timeout=10)
    fcm_token = f"fcm-{uuid.uuid4().hex}:{uuid.uuid4().hex}"
    secrets.append(fcm_token)
    device = {"token": fcm_token, "platform": "android"}
    assert requests.post(f"{base}/api/v1/devices", json=device, headers=auth, timeout=10).status_code in (
        200,
        201,
    )
    assert requests.delete(f"{base}/api/v1/devices/{fcm_token}", headers=auth, timeout=10).status_code == 204
    assert [m["body"] for m in history.json()["results"]] == [body, reply]

    # Credentials where they do not belong: a used ticket again, query strings, a bad token.
    with Socket(base, ticket=ticket) as again:
        again.wait_closed()  # refused (which close code is the realtime tests' business)
    wrong_token = f"eyJ.{uuid.uuid4().hex}.sig"
    leaked_code = f"{uuid.uuid4().int % 1_000_000:06d}"
    secrets += [wrong_token, f"code={leaked_code}"]
    assert (
        requests.get(
            f"{base}/api/v1/mitra/me", headers={"Authorization": f"Bearer {wrong_token}"}
        ).status_code
        == 401
    )
    requests.get(f"{base}/api/v1/nope?ticket={ticket}&code={leaked_code}&token={wrong_token}", timeout=10)
    requests.get(f"{base}/ws/v1/?ticket={ticket}", timeout=10)


def _letters():
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def test_it_keeps_bodies_codes_tickets_and_tokens_out_of_the_logs(transactional_db, active_session, tmp_path):
    session, client, mitra = active_session()
    secrets = []
    log_path = tmp_path / "public.log"
    env = server_env(DEBUG="false", LOG_LEVEL="DEBUG", OTP_TEST_PHONES=OTP_PHONE, OTP_TEST_CODE=OTP_CODE)
    with serve_process("public", env=env, log_path=log_path) as (_, base):
        _otp_login(base, secrets)
        _flow(base, session, client, mitra, secrets)
    text = log_path.read_text()
    assert text.strip(), "the server logged nothing"
    for secret in secrets:
        assert secret not in text, f"a secret reached the logs: {secret[:12]}…"
    lines = [json.loads(line) for line in text.splitlines()]
    requests_logged = [line for line in lines if line["msg"] == "request"]
    logged = [{k: line[k] for k in ("method", "route", "status")} for line in requests_logged]
    assert {"method": "GET", "route": "(not found)", "status": 404} in logged
    # The route pattern, never the raw path: the FCM token stays out.
    assert {"method": "DELETE", "route": "/api/v1/devices/<str:token>", "status": 204} in logged
    assert not any("path" in line for line in requests_logged)
    assert any(line.get("request_id") == "flow-1" for line in requests_logged)
    sockets = [line for line in lines if line["msg"] in ("socket accepted", "socket closed")]
    assert sockets and all(line.get("request_id") for line in sockets)
