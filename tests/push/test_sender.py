"""The FCM sender: the real firebase-admin against a local fake FCM (see conftest.py).

The worker reads devices on its own database connection, so these tests commit
(transactional_db). Devices are created as rows: registering them is the accounts API's job.
"""

import logging
import time

import pytest

from halobestie.accounts.models import Device
from halobestie.integrations import push

from .conftest import (
    ACCESS_TOKEN,
    INVALID_PAYLOAD,
    INVALID_TOKEN,
    QUOTA_EXCEEDED,
    SENDER_ID_MISMATCH,
    UNREGISTERED,
    closed_port_url,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Deliberate: the apps register FCM registration tokens (see halobestie/integrations/push.py).
    pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning"),
]


def offer_push(user_id):
    push.send_to_user(
        user_id=user_id,
        title="Ada yang ingin curhat",
        body="Buka aplikasi untuk menerima sesi baru.",
        data={"type": "session.offer", "session_id": "abc"},
        high_priority=True,
    )


def test_it_sends_a_data_message_with_high_android_priority(use_fcm, make_mitra):
    fake = use_fcm()
    mitra = make_mitra()
    Device.objects.create(user=mitra.user, token="mitra-token-1", platform="android")

    offer_push(mitra.user_id)

    assert push.flush(10)
    assert fake.token_exchanges == 1
    assert [entry["authorization"] for entry in fake.received] == [f"Bearer {ACCESS_TOKEN}"]
    assert fake.messages() == [
        {
            "token": "mitra-token-1",
            "data": {
                "type": "session.offer",
                "session_id": "abc",
                "title": "Ada yang ingin curhat",
                "body": "Buka aplikasi untuk menerima sesi baru.",
            },
            "android": {"priority": "high"},
            "apns": {
                "headers": {"apns-push-type": "alert", "apns-priority": "10"},
                "payload": {
                    "aps": {
                        "alert": {
                            "title": "Ada yang ingin curhat",
                            "body": "Buka aplikasi untuk menerima sesi baru.",
                        },
                        "sound": "default",
                    }
                },
            },
        }
    ]


def test_it_sends_normal_priority_when_not_urgent(use_fcm, make_client_user):
    fake = use_fcm()
    client = make_client_user()
    Device.objects.create(user=client, token="client-token-1", platform="ios")

    push.send_to_user(
        user_id=client.id, title="Sesi selesai", body="Selesai.", data={"type": "session.ended", "n": 3}
    )

    assert push.flush(10)
    (message,) = fake.messages()
    assert message["android"] == {"priority": "normal"}
    assert message["apns"]["headers"] == {"apns-push-type": "alert", "apns-priority": "5"}
    assert message["apns"]["payload"] == {"aps": {"alert": {"title": "Sesi selesai", "body": "Selesai."}}}
    assert message["data"] == {"type": "session.ended", "n": "3", "title": "Sesi selesai", "body": "Selesai."}


def test_it_sends_to_every_device_of_the_user_only(use_fcm, make_client_user):
    fake = use_fcm()
    client, other = make_client_user(), make_client_user()
    Device.objects.create(user=client, token="phone", platform="android")
    Device.objects.create(user=client, token="tablet", platform="android")
    Device.objects.create(user=other, token="someone-else", platform="android")

    offer_push(client.id)

    assert push.flush(10)
    assert sorted(message["token"] for message in fake.messages()) == ["phone", "tablet"]


def test_it_sends_nothing_to_a_user_without_devices(use_fcm, make_client_user):
    fake = use_fcm()

    offer_push(make_client_user().id)

    assert push.flush(10)
    assert fake.received == []


@pytest.mark.parametrize(
    "answer", [UNREGISTERED, SENDER_ID_MISMATCH, INVALID_TOKEN], ids=["unregistered", "sender", "invalid"]
)
def test_it_deletes_a_dead_token_and_keeps_the_others(use_fcm, make_client_user, answer):
    fake = use_fcm()
    client = make_client_user()
    Device.objects.create(user=client, token="dead-token", platform="android")
    Device.objects.create(user=client, token="live-token", platform="android")
    fake.answers["dead-token"] = answer

    offer_push(client.id)

    assert push.flush(10)
    assert sorted(message["token"] for message in fake.messages()) == ["dead-token", "live-token"]
    assert list(Device.objects.values_list("token", flat=True)) == ["live-token"]


@pytest.mark.parametrize("answer", [INVALID_PAYLOAD, QUOTA_EXCEEDED], ids=["invalid-payload", "quota"])
def test_it_keeps_the_device_on_other_errors(use_fcm, make_client_user, answer):
    fake = use_fcm()
    client = make_client_user()
    Device.objects.create(user=client, token="good-token", platform="android")
    fake.answers["good-token"] = answer

    offer_push(client.id)

    assert push.flush(10)
    assert len(fake.received) == 1
    assert list(Device.objects.values_list("token", flat=True)) == ["good-token"]


def test_it_returns_at_once_and_keeps_working_when_fcm_refuses(use_fcm, make_client_user):
    use_fcm(fcm_url=closed_port_url())
    client = make_client_user()
    Device.objects.create(user=client, token="token-1", platform="android")

    started = time.monotonic()
    offer_push(client.id)
    assert time.monotonic() - started < 0.5

    assert push.flush(10)
    assert list(Device.objects.values_list("token", flat=True)) == ["token-1"]


def test_it_returns_at_once_while_fcm_is_slow(use_fcm, make_client_user):
    fake = use_fcm(timeout_seconds=1)
    fake.delay_seconds = 10
    client = make_client_user()
    Device.objects.create(user=client, token="token-1", platform="android")

    started = time.monotonic()
    offer_push(client.id)
    offer_push(client.id)
    assert time.monotonic() - started < 0.5
    assert fake.wait_for(1)


def test_it_drops_and_counts_when_the_queue_is_full(use_fcm, make_client_user):
    fake = use_fcm(timeout_seconds=1, queue_size=1)
    fake.delay_seconds = 10
    client = make_client_user()
    Device.objects.create(user=client, token="token-1", platform="android")
    dropped_before = push.PUSHES.labels(outcome="dropped")._value.get()

    offer_push(client.id)
    assert fake.wait_for(1)  # the worker is now stuck on the slow FCM
    offer_push(client.id)  # waits in the queue
    offer_push(client.id)  # no room: dropped

    assert push.dropped_count() == 1
    assert push.PUSHES.labels(outcome="dropped")._value.get() == dropped_before + 1


def test_it_logs_type_and_user_only_without_a_service_account(make_client_user, caplog):
    push.configure_log_only()
    client = make_client_user()
    Device.objects.create(user=client, token="secret-device-token", platform="android")

    with caplog.at_level(logging.INFO, logger="halobestie.integrations.push"):
        push.send_to_user(
            user_id=client.id,
            title="Pesan baru",
            body="Bestie-mu mengirim pesan",
            data={"type": "message.new", "session_id": "abc"},
            high_priority=True,
        )

    (record,) = caplog.records
    assert (record.getMessage(), record.user_id, record.push_type) == (
        "push (log-only sender)",
        client.id,
        "message.new",
    )
    assert "Bestie-mu" not in caplog.text
    assert "secret-device-token" not in caplog.text
