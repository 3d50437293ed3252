"""'Your favourite Bestie is online': opt-in, once per client per day, against the fake FCM."""

from datetime import timedelta

import pytest
from django.utils import timezone

from halobestie.accounts.models import Device
from halobestie.integrations import push
from mitras.favourites import favourite_add
from mitras.models import FavouriteOnlinePush
from mitras.services import mitra_set_online

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning"),
]


def test_it_pushes_opted_in_clients_once_a_day_when_a_favourite_comes_online(
    use_fcm, make_client_user, make_mitra
):
    fake = use_fcm()
    fan, quiet = make_client_user(), make_client_user()
    Device.objects.create(user=fan, token="fan-token", platform="android")
    Device.objects.create(user=quiet, token="quiet-token", platform="android")
    mitra, other = make_mitra(display_name="Sari"), make_mitra(display_name="Dewi")
    favourite_add(client=fan, mitra_id=mitra.id, notify_online=True)
    favourite_add(client=fan, mitra_id=other.id, notify_online=True)
    favourite_add(client=quiet, mitra_id=mitra.id)  # no opt-in

    morning = timezone.now().replace(hour=1, minute=0)  # 08:00 in Jakarta
    mitra_set_online(mitra=mitra, is_online=True, now=morning)
    mitra_set_online(mitra=mitra, is_online=False, now=morning + timedelta(minutes=5))
    mitra_set_online(mitra=mitra, is_online=True, now=morning + timedelta(minutes=10))
    mitra_set_online(mitra=other, is_online=True, now=morning + timedelta(minutes=20))
    assert push.flush(10)
    assert [(m["token"], m["data"]) for m in fake.messages()] == [
        (
            "fan-token",
            {
                "type": "favourite.online",
                "mitra_id": str(mitra.id),
                "title": "Bestie favoritmu online",
                "body": "Sari sedang online. Mau curhat sekarang?",
            },
        )
    ]

    mitra_set_online(mitra=mitra, is_online=False, now=morning + timedelta(days=1))
    mitra_set_online(mitra=mitra, is_online=True, now=morning + timedelta(days=1, minutes=1))
    assert push.flush(10)
    assert [m["token"] for m in fake.messages()] == ["fan-token", "fan-token"]
    assert FavouriteOnlinePush.objects.filter(client=fan).count() == 2
    assert FavouriteOnlinePush.objects.filter(client=quiet).count() == 0
