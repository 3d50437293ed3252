"""FCM device tokens: register (upsert, the last registrant owns it), delete your own."""

import threading

from django.db import connection

from halobestie.accounts import services
from halobestie.accounts.models import Device
from tests.conftest import auth_client


def test_it_registers_a_device(make_client_user):
    user = make_client_user()

    response = auth_client(user).post(
        "/api/v1/devices", {"token": "fcm-token-1", "platform": "android"}, format="json"
    )

    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("token", "platform")} == {
        "token": "fcm-token-1",
        "platform": "android",
    }
    assert list(Device.objects.values_list("user_id", "token", "platform")) == [
        (user.id, "fcm-token-1", "android")
    ]


def test_it_registers_the_same_token_twice_as_one_device(make_client_user):
    user = make_client_user()
    client = auth_client(user)
    client.post("/api/v1/devices", {"token": "fcm-token-1"}, format="json")

    client.post("/api/v1/devices", {"token": "fcm-token-1", "platform": "ios"}, format="json")

    assert list(Device.objects.values_list("user_id", "token", "platform")) == [
        (user.id, "fcm-token-1", "ios")
    ]


def test_it_moves_a_token_to_the_user_who_registered_it_last(make_client_user, make_mitra):
    first, mitra = make_client_user(), make_mitra()
    auth_client(first).post("/api/v1/devices", {"token": "shared-phone-token"}, format="json")
    created_at = Device.objects.get().created_at

    auth_client(mitra.user).post("/api/v1/devices", {"token": "shared-phone-token"}, format="json")

    device = Device.objects.get()
    assert (device.user_id, device.created_at) == (mitra.user_id, created_at)


def test_it_keeps_the_latest_ten_devices_of_a_user(make_client_user):
    user = make_client_user()
    for number in range(12):
        services.device_register(user=user, token=f"fcm-token-{number}")

    assert sorted(Device.objects.filter(user=user).values_list("token", flat=True)) == sorted(
        f"fcm-token-{number}" for number in range(2, 12)
    )


def test_it_refuses_an_unknown_platform(make_client_user):
    response = auth_client(make_client_user()).post(
        "/api/v1/devices", {"token": "fcm-token-1", "platform": "symbian"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["platform"]
    assert Device.objects.count() == 0


def test_it_deletes_your_own_device(make_client_user):
    user = make_client_user()
    services.device_register(user=user, token="fcm-token-1")

    response = auth_client(user).delete("/api/v1/devices/fcm-token-1")

    assert response.status_code == 204
    assert Device.objects.count() == 0


def test_it_does_not_delete_someone_elses_device(make_client_user):
    owner, other = make_client_user(), make_client_user()
    services.device_register(user=owner, token="fcm-token-1")

    response = auth_client(other).delete("/api/v1/devices/fcm-token-1")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert list(Device.objects.values_list("user_id", "token")) == [(owner.id, "fcm-token-1")]


def test_it_requires_a_token_to_register_a_device(api):
    response = api.post("/api/v1/devices", {"token": "fcm-token-1"}, format="json")

    assert response.status_code == 401
    assert Device.objects.count() == 0


def test_it_leaves_one_owner_when_two_users_register_a_token_at_once(transactional_db, make_client_user):
    users = [make_client_user() for _ in range(6)]
    start = threading.Barrier(len(users))
    errors = []

    def register(user):
        try:
            start.wait()
            services.device_register(user=user, token="contested-token")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert Device.objects.filter(token="contested-token").count() == 1
    assert Device.objects.get().user_id in {user.id for user in users}
