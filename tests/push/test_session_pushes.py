"""Session pushes through the real sessions flow (create, pay, dispatch, accept, end) and the
real FCM sender against the fake FCM. Committed transactions (transactional_db): the pushes go
out from `transaction.on_commit`, and the worker reads devices on its own connection."""

import time

import pytest

from halobestie.accounts.models import Device
from halobestie.integrations import push
from mitras.services import mitra_set_online
from sessions_app import lifecycle
from sessions_app.models import Status
from tests.conftest import auth_client

from .conftest import UNREGISTERED, closed_port_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Deliberate: the apps register FCM registration tokens (see halobestie/integrations/push.py).
    pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning"),
]

# Generous against a fake FCM that takes 10 s: a request that waited on FCM could not meet it.
QUICK_SECONDS = 2.0


@pytest.fixture
def offered_session(make_client_user, make_mitra):
    """A client and an online mitra, each with a device; a session created, paid and (through
    the real queue dispatch) offered to the mitra."""

    def make():
        client = make_client_user()
        mitra = make_mitra()
        Device.objects.create(user=client, token="client-token", platform="android")
        Device.objects.create(user=mitra.user, token="mitra-token", platform="android")
        mitra_set_online(mitra=mitra, is_online=True)
        session = lifecycle.session_create(client=client, package_code="curhat-15")
        lifecycle.session_mark_paid(session_id=session.id)
        session.refresh_from_db()
        assert (session.status, session.mitra_id) == (Status.OFFERED, mitra.id)
        return session, client, mitra

    return make


def test_it_pushes_an_offer_to_the_mitras_device_with_high_priority(use_fcm, offered_session):
    fake = use_fcm()

    session, client, mitra = offered_session()

    assert push.flush(10)
    assert fake.messages() == [
        {
            "token": "mitra-token",
            "data": {
                "type": "session.offer",
                "session_id": str(session.id),
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
    assert "notification" not in fake.messages()[0]


def test_it_deletes_the_mitras_dead_token_after_an_offer(use_fcm, offered_session):
    fake = use_fcm()
    fake.answers["mitra-token"] = UNREGISTERED

    session, client, mitra = offered_session()

    assert push.flush(10)
    assert [message["token"] for message in fake.messages()] == ["mitra-token"]
    assert list(Device.objects.values_list("token", flat=True)) == ["client-token"]


def test_it_pushes_session_started_and_ended_to_the_client(use_fcm, offered_session):
    fake = use_fcm()
    session, client, mitra = offered_session()

    accepted = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/accept")
    ended = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/end")

    assert (accepted.status_code, ended.status_code) == (200, 200)
    assert push.flush(10)
    assert [(m["token"], m["data"]["type"], m["android"]["priority"]) for m in fake.messages()] == [
        ("mitra-token", "session.offer", "high"),
        ("client-token", "session.started", "high"),
        ("client-token", "session.ended", "normal"),
    ]
    assert fake.messages()[2]["data"] == {
        "type": "session.ended",
        "session_id": str(session.id),
        "title": "Sesi selesai",
        "body": "Sesi curhatmu sudah berakhir. Beri nilai untuk Bestie-mu, yuk.",
    }


def test_it_does_not_push_session_ended_to_the_client_who_ended_it(use_fcm, offered_session):
    fake = use_fcm()
    session, client, mitra = offered_session()

    auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/accept")
    ended = auth_client(client).post(f"/api/v1/sessions/{session.id}/end")

    assert ended.status_code == 200
    assert push.flush(10)
    assert [m["data"]["type"] for m in fake.messages()] == ["session.offer", "session.started"]


def test_it_answers_the_request_quickly_while_fcm_is_slow(use_fcm, offered_session):
    fake = use_fcm(timeout_seconds=3)
    fake.delay_seconds = 10
    session, client, mitra = offered_session()
    assert fake.wait_for(1)  # the worker now hangs on the offer push

    started = time.monotonic()
    response = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/accept")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["status"] == Status.ACTIVE
    assert elapsed < QUICK_SECONDS


def test_it_answers_the_request_quickly_while_fcm_refuses(use_fcm, offered_session):
    use_fcm(fcm_url=closed_port_url())
    session, client, mitra = offered_session()

    started = time.monotonic()
    response = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/accept")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["status"] == Status.ACTIVE
    assert elapsed < QUICK_SECONDS
    assert push.flush(10)
    assert sorted(Device.objects.values_list("token", flat=True)) == ["client-token", "mitra-token"]


def test_it_pushes_a_refund_to_the_client_with_the_amount(use_fcm, offered_session):
    from sessions_app import notifications

    fake = use_fcm()
    session, client, mitra = offered_session()

    notifications.refund_issued(session=session, amount_idr=15000)

    assert push.flush(10)
    (refund,) = [m for m in fake.messages() if m["data"]["type"] == "refund.issued"]
    assert refund["token"] == "client-token"
    assert refund["android"] == {"priority": "normal"}
    assert refund["data"] == {
        "type": "refund.issued",
        "session_id": str(session.id),
        "amount_idr": "15000",
        "title": "Dana dikembalikan",
        "body": "Pengembalian dana Rp15.000 untuk sesimu sudah diproses.",
    }
