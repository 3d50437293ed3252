"""Hostile input through a real server process: deeply nested JSON, NUL bytes and lone surrogates
in bodies, paths, webhook fields and socket frames get a 4xx in the envelope (an `error` frame on
the socket), never a 500 or `server_error`, and nothing changes."""

import json

import pytest
import requests
from django.db import DataError

from halobestie.accounts.models import Device, OtpChallenge, User
from halobestie.accounts.services import device_register
from halobestie.accounts.tokens import tokens_for
from halobestie.errors import api_exception_handler
from payments.models import Payment, PaymentCallback
from sessions_app.models import ChatSession, Message
from tests.realtime.conftest import (
    Socket,
    active_session,  # noqa: F401 (fixture)
)
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)
WEBHOOK_TOKEN = "hostile-input-callback-token"


def _nested(depth):
    return "[" * depth + "]" * depth


@pytest.fixture
def server(tmp_path):
    env = server_env(XENDIT_WEBHOOK_TOKEN=WEBHOOK_TOKEN, OTP_TEST_PHONES="+6281200000001")
    log_path = tmp_path / "public.log"
    with serve_process("public", env=env, log_path=log_path) as (_, base):
        yield base
    text = log_path.read_text()
    assert '"server_error"' not in text and "Traceback" not in text


def _json_post(url, raw, *, method="POST", headers=None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    return requests.request(method, url, data=raw.encode("utf-8"), headers=headers, timeout=20)


def _assert_4xx(answer, status, code):
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_it_refuses_deeply_nested_json_with_400(server, make_client_user):
    user = make_client_user()
    auth = {"Authorization": f"Bearer {tokens_for(user)['access']}"}
    for depth in (25, 5_000, 30_000):
        body = '{"phone": ' + _nested(depth) + "}"
        _assert_4xx(_json_post(f"{server}/api/v1/auth/otp/request", body), 400, "parse_error")
        body = '{"display_name": ' + _nested(depth) + "}"
        _assert_4xx(_json_post(f"{server}/api/v1/me", body, method="PATCH", headers=auth), 400, "parse_error")
    assert OtpChallenge.objects.count() == 0
    assert User.objects.get(pk=user.pk).display_name == user.display_name


def test_it_refuses_nul_and_lone_surrogates_in_bodies_and_paths(server, make_client_user):
    user = make_client_user()
    device_register(user=user, token="fcm-token-1", platform="android")
    auth = {"Authorization": f"Bearer {tokens_for(user)['access']}"}
    for bad in ("a\\u0000b", "\\ud800", "x\\udfffy"):
        body = '{"display_name": "' + bad + '"}'
        _assert_4xx(_json_post(f"{server}/api/v1/me", body, method="PATCH", headers=auth), 400, "parse_error")
        body = '{"token": "' + bad + '", "platform": "android"}'
        _assert_4xx(_json_post(f"{server}/api/v1/devices", body, headers=auth), 400, "parse_error")
        body = '{"phone": "+62812' + bad + '"}'
        _assert_4xx(_json_post(f"{server}/api/v1/auth/otp/request", body), 400, "parse_error")
    for path in ("/api/v1/devices/a%00b", "/api/v1/devices/fcm-token-1%00", "/api/v1/sessions/%00"):
        answer = requests.delete(f"{server}{path}", headers=auth, timeout=10)
        _assert_4xx(answer, 400, "bad_request")
    _assert_4xx(
        requests.get(f"{server}/api/v1/sessions?status=%00", headers=auth, timeout=10), 400, "bad_request"
    )
    assert User.objects.get(pk=user.pk).display_name == user.display_name
    assert list(Device.objects.values_list("token", flat=True)) == ["fcm-token-1"]
    assert OtpChallenge.objects.count() == 0


def test_it_refuses_a_webhook_with_nul_in_external_id(server, make_client_user):
    from sessions_app import lifecycle as sessions

    session = sessions.session_create(client=make_client_user(), package_code="curhat-15")
    payment = Payment.objects.get(session=session)
    for external_id in (payment.external_id + "\\u0000", "\\ud800", "a\\u0000"):
        raw = (
            f'{{"id": "{payment.invoice_id}", "external_id": "{external_id}", "status": "PAID", '
            f'"amount": {payment.amount_idr}}}'
        )
        answer = _json_post(
            f"{server}/webhooks/xendit/invoice", raw, headers={"x-callback-token": WEBHOOK_TOKEN}
        )
        _assert_4xx(answer, 400, "invalid_callback")
        nested = _json_post(
            f"{server}/webhooks/xendit/invoice", _nested(10_000), headers={"x-callback-token": WEBHOOK_TOKEN}
        )
        _assert_4xx(nested, 400, "invalid_callback")
    assert PaymentCallback.objects.count() == 0
    assert Payment.objects.get(pk=payment.pk).status == "pending"
    assert ChatSession.objects.get(pk=session.pk).status == "pending_payment"


def test_it_answers_hostile_socket_frames_with_an_error_frame(server, active_session):  # noqa: F811
    session, client, mitra = active_session()
    with Socket(server, client) as c, Socket(server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        frames = [
            '{"type": "message.send", "session_id": "%s", "client_msg_id": "ok-1", "body": "a\\u0000b"}',
            '{"type": "message.send", "session_id": "%s", "client_msg_id": "ok-2", "body": "\\ud83d"}',
            '{"type": "message.send", "session_id": "%s", "client_msg_id": "a\\u0000", "body": "halo"}',
            '{"type": "message.send", "session_id": "%s", "client_msg_id": "\\udc00", "body": "halo"}',
            '{"type": "message.send", "session_id": "%s", "client_msg_id": "ok-3", "body": '
            + _nested(9_000)
            + "}",
        ]
        for frame in frames:
            c.send(frame.replace("%s", str(session.id)))
            error = c.expect_type("error")
            assert error["code"] == "validation_error", error
        # The socket stays usable, and the mitra got nothing.
        c.send({"type": "ping"})
        c.expect_type("pong")
        m.send({"type": "ping"})
        m.expect_type("pong")
        assert [f for f in m.pending if f["type"] == "message.new"] == []
    assert Message.objects.filter(session=session).count() == 0
    assert ChatSession.objects.get(pk=session.pk).last_seq == 0


def test_it_answers_a_database_data_error_with_400_as_the_last_net(make_client_user):
    user = make_client_user()
    with pytest.raises(DataError) as caught:
        Device.objects.filter(user=user, token="a\x00b").delete()
    response = api_exception_handler(caught.value, {})
    assert (response.status_code, json.loads(json.dumps(response.data))["error"]["code"]) == (
        400,
        "bad_request",
    )
