"""Booking reminders by push through the scheduler, against the fake FCM server: two schedulers
ticking at once send each reminder once (sessions_app/bookings.py)."""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from halobestie.accounts.models import Device
from halobestie.integrations import push
from halobestie.scheduler import run_tick
from sessions_app import bookings
from tests.sessions_app.test_bookings import _always_working, _next_slot, _paid

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning"),
]


@pytest.fixture
def booked_mitra(make_mitra):
    mitra = make_mitra(display_name="Ayu")
    _always_working(mitra)
    return mitra


def test_reminders_go_out_once_each_with_two_schedulers(use_fcm, booked_mitra, make_client_user):
    fake = use_fcm()
    client = make_client_user()
    Device.objects.create(user=client, token="client-token", platform="android")
    Device.objects.create(user=booked_mitra.user, token="mitra-token", platform="android")
    slot = _next_slot(hours_ahead=26)
    booking = _paid(
        bookings.booking_create(
            client=client, mitra_id=booked_mitra.id, starts_at=slot, package_code="curhat-30"
        )
    )
    assert push.flush(10)
    confirmations = len(fake.messages())

    def tick_twice_at(now):
        threads = [threading.Thread(target=lambda: (run_tick(now=now), connection.close())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        close_old_connections()

    tick_twice_at(slot - timedelta(hours=25))  # nothing due yet
    tick_twice_at(slot - timedelta(hours=23))  # the 24-hour reminder
    tick_twice_at(slot - timedelta(hours=22))
    tick_twice_at(slot - timedelta(minutes=14))  # the 15-minute reminder
    tick_twice_at(slot - timedelta(minutes=10))
    assert push.flush(10)
    reminders = [m for m in fake.messages()[confirmations:] if m["data"]["type"] == "booking.reminder"]
    assert sorted(m["token"] for m in reminders) == [
        "client-token",
        "client-token",
        "mitra-token",
        "mitra-token",
    ]
    booking.refresh_from_db()
    assert booking.reminders_sent == [900, 86400]
