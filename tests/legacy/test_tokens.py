"""The old backend's tokens: accepted within LEGACY_JWT_ACCEPT_UNTIL for imported users (REST,
WebSocket, a one-time refresh exchange), refused with legacy_token_expired after it."""

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from halobestie.accounts.models import User
from halobestie.legacy.importer import LegacyImport
from halobestie.legacy.models import LegacyRefreshExchange
from tests.realtime.conftest import Socket
from tests.servers import server_env, uvicorn_process

SECRET = "the-node-backends-old-auth-jwt-secret-0123456789"
OPEN = (datetime.now(UTC) + timedelta(days=7)).isoformat()
CLOSED = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def legacy_token(sub, role="client", kind="access", secret=SECRET, lifetime=900):
    now = int(time.time())
    claims = {"sub": sub, "role": role, "type": kind, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm="HS256")


def _bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _refresh(api, token):
    return api.post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")


@pytest.fixture
def imported(clean_export_dir):
    LegacyImport(clean_export_dir).run()
    return {
        "client": User.objects.get(phone="+6281200000001"),
        "bestie": User.objects.get(phone="+6281100000001"),
    }


@override_settings(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=OPEN)
def test_it_accepts_an_old_access_token_of_an_imported_user_within_the_window(imported):
    me = _bearer(legacy_token(1)).get("/api/v1/me")
    mitra_me = _bearer(legacy_token("1", role="mitra")).get("/api/v1/mitra/me")

    assert me.status_code == 200
    assert me.json()["id"] == imported["client"].pk
    assert mitra_me.status_code == 200
    assert mitra_me.json()["phone"] == "+6281100000001"


@override_settings(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=OPEN)
def test_it_exchanges_an_old_refresh_token_once_for_ours(api, imported):
    old = legacy_token(2, kind="refresh", lifetime=30 * 86400)

    exchanged = _refresh(api, old)
    again = _refresh(api, old)

    assert exchanged.status_code == 200
    assert _bearer(exchanged.json()["access"]).get("/api/v1/me").json()["phone"] == "+6281200000002"
    assert _refresh(api, exchanged.json()["refresh"]).status_code == 200  # ours from now on
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_not_valid"
    assert LegacyRefreshExchange.objects.count() == 1


@override_settings(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=OPEN)
def test_it_logs_out_with_an_old_refresh_token_which_then_cannot_be_exchanged(api, imported):
    old = legacy_token(1, kind="refresh", lifetime=30 * 86400)

    logout = api.post("/api/v1/auth/logout", {"refresh": old}, format="json")
    exchanged = _refresh(api, old)

    assert logout.status_code == 204
    assert (exchanged.status_code, exchanged.json()["error"]["code"]) == (401, "token_not_valid")
    assert OutstandingToken.objects.count() == 0


@override_settings(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=OPEN)
def test_it_refuses_old_tokens_that_are_forged_expired_of_the_wrong_kind_or_not_imported(api, imported):
    cases = {
        "forged": legacy_token(1, secret="someone-elses-secret-0123456789abcdef"),
        "expired": legacy_token(1, lifetime=-10),
        "refresh as access": legacy_token(1, kind="refresh"),
        "not imported": legacy_token(99),
        "not an imported bestie": legacy_token(3, role="mitra"),
        "unknown role": legacy_token(1, role="admin"),
    }

    answers = {name: _bearer(token).get("/api/v1/me") for name, token in cases.items()}

    assert {name: (r.status_code, r.json()["error"]["code"]) for name, r in answers.items()} == dict.fromkeys(
        cases, (401, "token_not_valid")
    )
    access_as_refresh = _refresh(api, legacy_token(1))
    assert (access_as_refresh.status_code, access_as_refresh.json()["error"]["code"]) == (
        401,
        "token_not_valid",
    )
    assert LegacyRefreshExchange.objects.count() == 0


@override_settings(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=CLOSED)
def test_it_refuses_old_tokens_after_the_window_with_legacy_token_expired(api, imported):
    outstanding = OutstandingToken.objects.count()

    me = _bearer(legacy_token(1)).get("/api/v1/me")
    refreshed = _refresh(api, legacy_token(1, kind="refresh", lifetime=30 * 86400))

    for response in (me, refreshed):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "legacy_token_expired"
        assert (
            response.json()["error"]["detail"] == "Sesi dari sistem lama sudah berakhir. Silakan masuk lagi."
        )
    assert LegacyRefreshExchange.objects.count() == 0
    assert OutstandingToken.objects.count() == outstanding


def test_it_treats_old_tokens_as_invalid_when_no_legacy_secret_is_set(imported):
    response = _bearer(legacy_token(1)).get("/api/v1/me")

    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_not_valid")


def _legacy_server(tmp_path, until):
    env = server_env(LEGACY_JWT_SECRET=SECRET, LEGACY_JWT_ACCEPT_UNTIL=until)
    return uvicorn_process("public", env=env, log_path=tmp_path / "public.log")


def test_it_opens_a_websocket_with_an_old_access_token_within_the_window_only(
    transactional_db, tmp_path, clean_export_dir
):
    LegacyImport(clean_export_dir).run()

    with _legacy_server(tmp_path, OPEN) as (_, base_url):
        with Socket(base_url, token=legacy_token(1)) as socket:
            socket.send({"type": "ping"})
            assert socket.expect_type("pong") == {"type": "pong"}
        with Socket(base_url, token=legacy_token(1, role="mitra")) as socket:
            socket.send({"type": "ping"})
            assert socket.expect_type("pong") == {"type": "pong"}
    with _legacy_server(tmp_path, CLOSED) as (_, base_url), Socket(base_url, token=legacy_token(1)) as socket:
        assert socket.expect_type("error")["code"] == "legacy_token_expired"
        assert socket.wait_closed() == 4001
