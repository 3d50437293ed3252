"""The user's own account: read, change the nickname, erase (clients only)."""

import pytest
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from halobestie.accounts import hooks, services
from halobestie.accounts.models import Device, OtpChallenge, User
from halobestie.accounts.tokens import tokens_for
from tests.accounts.conftest import request_otp, verify_otp
from tests.conftest import auth_client


def test_it_shows_a_client_their_account(make_client_user):
    user = make_client_user(phone="+6281234567890")

    response = auth_client(user).get("/api/v1/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.id,
        "role": "client",
        "phone": "+6281234567890",
        "display_name": user.display_name,
        "created_at": response.json()["created_at"],
        "mitra_id": None,
    }


def test_it_shows_a_mitra_their_mitra_id(make_mitra):
    mitra = make_mitra()

    response = auth_client(mitra.user).get("/api/v1/me")

    assert response.json()["role"] == "mitra"
    assert response.json()["mitra_id"] == mitra.id


def test_it_changes_the_nickname(make_client_user):
    user = make_client_user()

    response = auth_client(user).patch("/api/v1/me", {"display_name": "  Mawar  "}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Mawar"
    user.refresh_from_db()
    assert user.display_name == "Mawar"


def test_it_refuses_a_nickname_that_is_too_long(make_client_user):
    user = make_client_user()
    before = user.display_name

    response = auth_client(user).patch("/api/v1/me", {"display_name": "x" * 101}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["display_name"]
    user.refresh_from_db()
    assert user.display_name == before


def test_it_erases_a_clients_personal_data_and_revokes_everything(api, make_client_user):
    user = make_client_user(phone="+6281234567890")
    services.device_register(user=user, token="fcm-token-1", platform="android")
    pair = tokens_for(user)
    other_pair = tokens_for(user)
    client = auth_client(user)

    response = client.delete("/api/v1/me")

    assert response.status_code == 204
    user.refresh_from_db()
    assert (user.phone, user.display_name, user.email) == (None, "", None)
    assert user.deleted_at is not None
    assert not user.has_usable_password()
    assert Device.objects.filter(user=user).count() == 0
    assert OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True).count() == 0
    refused = auth_client(user).get("/api/v1/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "account_deleted"
    for refresh in (pair["refresh"], other_pair["refresh"]):
        assert api.post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json").status_code == 401


def test_it_keeps_the_sessions_and_payments_of_an_erased_client(make_client_user):
    from payments.models import Payment
    from sessions_app.lifecycle import session_create
    from sessions_app.models import ChatSession

    user = make_client_user(phone="+6281234567890")
    session = session_create(client=user, package_code="curhat-30")

    services.user_erase(user=user)

    session = ChatSession.objects.get(pk=session.pk)
    assert session.client_id == user.id
    assert session.client.phone is None
    assert Payment.objects.filter(session=session).count() == 1


def test_it_lets_the_same_phone_sign_up_again_as_a_new_client(api, fazpass, make_client_user):
    old = make_client_user(phone="+6281234567890")
    services.user_erase(user=old)

    request_otp(api, "081234567890")
    verified = verify_otp(api, "081234567890", fazpass.latest_code())

    assert verified.status_code == 200
    assert verified.json()["user"]["id"] != old.id
    assert User.objects.filter(phone="+6281234567890").count() == 1


def test_it_forgets_the_otp_challenges_of_an_erased_client(fazpass, make_client_user):
    user = make_client_user(phone="+6281234567890")
    services.otp_challenge_request(phone="+6281234567890", ip_address=None)

    services.user_erase(user=user)

    assert OtpChallenge.objects.count() == 0


def test_it_tells_other_apps_after_commit_that_a_client_was_erased(
    make_client_user, django_capture_on_commit_callbacks
):
    user = make_client_user()
    heard = []
    hooks.on_client_deleted(heard.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.user_erase(user=user)
            assert heard == []
        services.user_erase(user=user)  # idempotent: no second notice
    finally:
        hooks.remove_callback(heard.append)

    assert heard == [user.id]


def test_it_refuses_to_erase_a_mitra(make_mitra):
    mitra = make_mitra(phone="+6281100000042")

    response = auth_client(mitra.user).delete("/api/v1/me")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_not_allowed"
    mitra.user.refresh_from_db()
    assert (mitra.user.phone, mitra.user.deleted_at) == ("+6281100000042", None)


def test_it_refuses_the_service_call_for_a_mitra_too(make_mitra):
    mitra = make_mitra()

    with pytest.raises(services.Forbidden):
        services.user_erase(user=mitra.user)

    mitra.user.refresh_from_db()
    assert mitra.user.deleted_at is None
