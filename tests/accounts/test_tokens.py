"""Mitra login, token expiry, refresh rotation, logout, role checks, deactivated mitras."""

import threading
from datetime import timedelta

from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from halobestie.accounts import services
from halobestie.accounts.models import IssuedTokenPair
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


def test_it_rotates_refresh_tokens_and_answers_a_resend_within_the_leeway_with_the_same_pair(
    api, make_client_user
):
    user = make_client_user()
    first = tokens_for(user)

    rotated = _refresh(api, first["refresh"])
    again = _refresh(api, first["refresh"])

    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    assert RefreshToken(rotated.json()["refresh"])["role"] == "client"
    assert _bearer(rotated.json()["access"]).get("/api/v1/me").json()["id"] == user.id
    assert again.status_code == 200
    assert again.json() == rotated.json()
    assert IssuedTokenPair.objects.filter(user=user).count() == 2
    assert _refresh(api, rotated.json()["refresh"]).status_code == 200


def test_it_revokes_the_whole_family_when_a_rotated_token_is_reused_after_the_leeway(
    api, make_client_user, settings
):
    settings.AUTH_REFRESH_REUSE_LEEWAY_SECONDS = 0
    user = make_client_user()
    first = tokens_for(user)
    other_login = tokens_for(user)
    rotated = _refresh(api, first["refresh"]).json()
    newest = _refresh(api, rotated["refresh"]).json()

    reused = _refresh(api, first["refresh"])

    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_reused"
    # Every token of that login is dead, refresh and access alike ...
    for pair in (first, rotated, newest):
        assert _refresh(api, pair["refresh"]).status_code == 401
        refused = _bearer(pair["access"]).get("/api/v1/me")
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "token_revoked")
    # ... and the person's other login is untouched.
    assert _bearer(other_login["access"]).get("/api/v1/me").status_code == 200
    assert _refresh(api, other_login["refresh"]).status_code == 200


def test_it_refuses_an_access_token_as_a_refresh_token(api, make_client_user):
    response = _refresh(api, tokens_for(make_client_user())["access"])

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_it_rotates_a_refresh_token_once_under_concurrent_refreshes(transactional_db, make_client_user):
    """An app's foreground and background (and more) refreshing at once: one rotation, and every
    caller gets the same new pair, so nobody is logged out."""
    user = make_client_user()
    refresh = tokens_for(user)["refresh"]
    outcomes = []
    start = threading.Barrier(6)

    def rotate():
        try:
            start.wait()
            outcomes.append(services.auth_token_refresh(refresh=refresh))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(outcomes) == 6
    assert all(outcome == outcomes[0] for outcome in outcomes), outcomes
    assert set(outcomes[0]) == {"access", "refresh"}
    assert IssuedTokenPair.objects.filter(user=user).count() == 2
    assert _bearer(outcomes[0]["access"]).get("/api/v1/me").status_code == 200


def test_it_revokes_the_refresh_and_access_tokens_at_logout(api, make_client_user):
    user = make_client_user()
    pair = tokens_for(user)
    rotated = _refresh(api, pair["refresh"]).json()
    other_login = tokens_for(user)

    logout = api.post(
        "/api/v1/auth/logout", {"refresh": rotated["refresh"]}, format="json",
        HTTP_AUTHORIZATION=f"Bearer {rotated['access']}",
    )  # fmt: skip

    assert logout.status_code == 204
    for token in (pair, rotated):
        refused = _refresh(api, token["refresh"])
        assert refused.status_code == 401
        denied = _bearer(token["access"]).get("/api/v1/me")
        assert (denied.status_code, denied.json()["error"]["code"]) == (401, "token_revoked")
    assert _bearer(other_login["access"]).get("/api/v1/me").status_code == 200


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


def test_it_purges_denied_access_tokens_once_they_expired(api, make_client_user):
    from datetime import UTC, datetime

    from halobestie.accounts.models import RevokedAccessToken
    from halobestie.accounts.tokens import revoked_purge

    pair = tokens_for(make_client_user())
    assert api.post("/api/v1/auth/logout", {"refresh": pair["refresh"]}, format="json").status_code == 204
    expires_at = RevokedAccessToken.objects.get().expires_at
    assert revoked_purge(now=expires_at - timedelta(seconds=1)) == 0
    assert revoked_purge(now=expires_at + timedelta(seconds=1)) == 1
    assert RevokedAccessToken.objects.count() == 0
    assert IssuedTokenPair.objects.count() == 1  # its refresh token could still be presented
    assert datetime.now(UTC) < expires_at + timedelta(days=1)
