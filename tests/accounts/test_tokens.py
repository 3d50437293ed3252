"""Mitra login, token expiry, refresh rotation, logout, role checks, deactivated mitras."""

import threading
from datetime import timedelta

from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from halobestie.accounts import services
from halobestie.accounts.tokens import tokens_for
from mitras.services import mitra_deactivate, mitra_reactivate
from tests.conftest import auth_client

MITRA_PHONE = "+6281100000042"
PASSWORD = "rahasia-mitra-123"


def _bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def _login(api, phone=MITRA_PHONE, password=PASSWORD):
    return api.post("/api/v1/auth/mitra/login", {"phone": phone, "password": password}, format="json")


def _refresh(api, refresh):
    return api.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")


def test_it_logs_a_mitra_in_with_phone_and_password(api, make_mitra):
    mitra = make_mitra(phone=MITRA_PHONE)

    response = _login(api, phone="081100000042")

    assert response.status_code == 200
    assert response.json()["user"] == {
        "id": mitra.user_id,
        "role": "mitra",
        "phone": MITRA_PHONE,
        "display_name": mitra.user.display_name,
        "created_at": response.json()["user"]["created_at"],
        "mitra_id": mitra.id,
    }
    assert RefreshToken(response.json()["refresh"])["role"] == "mitra"
    assert _bearer(response.json()["access"]).get("/api/v1/mitra/me").status_code == 200


def test_it_refuses_a_wrong_password_and_an_unknown_phone_alike(api, make_mitra):
    make_mitra(phone=MITRA_PHONE)

    wrong = _login(api, password="bukan-ini")
    unknown = _login(api, phone="+6281100000043")

    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"error": {"code": "invalid_credentials", "detail": "Nomor HP atau kata sandi salah."}}
    )
    assert OutstandingToken.objects.count() == 0


def test_it_refuses_mitra_login_to_a_client(api, make_client_user):
    make_client_user(phone=MITRA_PHONE)

    assert _login(api).json()["error"]["code"] == "invalid_credentials"


def test_it_refuses_a_deactivated_mitra_at_login_with_its_own_code(api, make_mitra, make_staff):
    mitra = make_mitra(phone=MITRA_PHONE)
    mitra_deactivate(mitra=mitra, actor=make_staff("admin"))

    response = _login(api)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "mitra_deactivated"
    assert OutstandingToken.objects.filter(user=mitra.user).count() == 0


def test_it_refuses_a_deactivated_mitras_old_tokens_at_once(api, make_mitra, make_staff):
    mitra = make_mitra(phone=MITRA_PHONE)
    pair = _login(api).json()
    mitra_deactivate(mitra=mitra, actor=make_staff("admin"))

    me = _bearer(pair["access"]).get("/api/v1/mitra/me")
    refreshed = _refresh(api, pair["refresh"])

    assert me.status_code == 401
    assert me.json()["error"]["code"] == "mitra_deactivated"
    assert refreshed.status_code == 401


def test_it_refuses_a_deactivated_mitras_refresh_even_if_not_blacklisted(api, make_mitra):
    mitra = make_mitra(phone=MITRA_PHONE)
    pair = _login(api).json()
    # Deactivated without the service (which would also blacklist): the refresh still checks.
    type(mitra).objects.filter(pk=mitra.pk).update(deactivated_at=mitra.created_at)

    refreshed = _refresh(api, pair["refresh"])

    assert refreshed.status_code == 401
    assert refreshed.json()["error"]["code"] == "mitra_deactivated"
    assert BlacklistedToken.objects.count() == 0


def test_it_lets_a_reactivated_mitra_log_in_again(api, make_mitra, make_staff):
    mitra = make_mitra(phone=MITRA_PHONE)
    staff = make_staff("admin")
    mitra_deactivate(mitra=mitra, actor=staff)
    mitra_reactivate(mitra=mitra, actor=staff)

    assert _login(api).status_code == 200


def test_it_refuses_an_expired_access_token(make_client_user):
    user = make_client_user()
    refresh = RefreshToken.for_user(user)
    refresh["role"] = user.role
    access = refresh.access_token
    access.set_exp(lifetime=timedelta(seconds=-1))

    response = _bearer(str(access)).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_it_refuses_an_expired_refresh_token(api, make_client_user):
    user = make_client_user()
    refresh = RefreshToken.for_user(user)
    refresh.set_exp(lifetime=timedelta(seconds=-1))

    response = _refresh(api, str(refresh))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_it_rotates_refresh_tokens_and_refuses_the_old_one(api, make_client_user):
    user = make_client_user()
    first = tokens_for(user)

    rotated = _refresh(api, first["refresh"])
    replayed = _refresh(api, first["refresh"])

    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    assert RefreshToken(rotated.json()["refresh"])["role"] == "client"
    assert _bearer(rotated.json()["access"]).get("/api/v1/me").json()["id"] == user.id
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "token_not_valid"
    assert _refresh(api, rotated.json()["refresh"]).status_code == 200


def test_it_refuses_an_access_token_as_a_refresh_token(api, make_client_user):
    response = _refresh(api, tokens_for(make_client_user())["access"])

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_it_rotates_a_refresh_token_once_under_concurrent_refreshes(transactional_db, make_client_user):
    refresh = tokens_for(make_client_user())["refresh"]
    outcomes = []
    start = threading.Barrier(6)

    def rotate():
        try:
            start.wait()
            services.auth_token_refresh(refresh=refresh)
            outcomes.append("rotated")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["InvalidToken"] * 5 + ["rotated"]


def test_it_revokes_the_refresh_token_at_logout(api, make_client_user):
    pair = tokens_for(make_client_user())

    logout = api.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, format="json")

    assert logout.status_code == 204
    refused = _refresh(api, pair["refresh"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_not_valid"


def test_it_refuses_logout_with_a_forged_token(api):
    response = api.post("/api/v1/auth/logout", {"refresh": "eyJ.bad.token"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
    assert BlacklistedToken.objects.count() == 0


def test_it_refuses_a_client_token_on_a_mitra_endpoint(make_client_user):
    response = auth_client(make_client_user()).get("/api/v1/mitra/me")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_not_allowed"


def test_it_refuses_a_token_whose_role_claim_does_not_match_the_account(make_mitra):
    mitra = make_mitra()
    refresh = RefreshToken.for_user(mitra.user)
    refresh["role"] = "client"

    response = _bearer(str(refresh.access_token)).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_it_refuses_requests_without_a_token(api):
    response = api.get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
