"""A client's favourite Besties: add, remove, list, and the opt-in push when one comes online.

Assignment prefers a client's favourites (sessions_app/preferences.py ranks them first among the
Besties that fit); this module owns the rows and the push.
"""

import logging
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.utils import timezone

from halobestie.errors import NotFound
from halobestie.integrations import push
from mitras.models import Favourite, FavouriteOnlinePush, Mitra

logger = logging.getLogger(__name__)
JAKARTA = ZoneInfo("Asia/Jakarta")


def favourite_add(*, client, mitra_id, notify_online: bool = False) -> Favourite:
    """Mark (or update) a favourite. Raises NotFound `mitra_not_found` for an unknown or
    deactivated Bestie."""
    mitra = Mitra.objects.filter(pk=mitra_id, deactivated_at__isnull=True).first()
    if mitra is None:
        raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    favourite, _ = Favourite.objects.update_or_create(
        client=client, mitra=mitra, defaults={"notify_online": notify_online}
    )
    return favourite


def favourite_remove(*, client, mitra_id) -> None:
    """Raises NotFound `favourite_not_found` when the Bestie is not a favourite."""
    deleted, _ = Favourite.objects.filter(client=client, mitra_id=mitra_id).delete()
    if not deleted:
        raise NotFound("Bestie ini bukan favoritmu.", code="favourite_not_found")


def favourites_of(*, client):
    return Favourite.objects.filter(client=client).select_related("mitra").order_by("-created_at", "-id")


def favourite_ids_by_client(client_ids) -> dict:
    """{client_id: {mitra_id, …}} for the given clients (one query)."""
    result = {}
    for client_id, mitra_id in Favourite.objects.filter(client_id__in=client_ids).values_list(
        "client_id", "mitra_id"
    ):
        result.setdefault(client_id, set()).add(mitra_id)
    return result


def favourites_notify_online(mitra_id, now=None) -> int:
    """The Bestie came online: push the clients who opted in, each at most once a day (Asia/Jakarta
    day; the unique row per client and day decides, so two instances never both push). Call after
    commit. Returns how many pushes were sent."""
    now = now or timezone.now()
    day = now.astimezone(JAKARTA).date()
    mitra = Mitra.objects.filter(pk=mitra_id).first()
    if mitra is None:
        return 0
    client_ids = list(
        Favourite.objects.filter(mitra_id=mitra_id, notify_online=True).values_list("client_id", flat=True)
    )
    sent = 0
    for client_id in client_ids:
        try:
            with transaction.atomic():
                FavouriteOnlinePush.objects.create(
                    client_id=client_id, day=day, mitra_id=mitra_id, sent_at=now
                )
        except IntegrityError:
            continue  # already pushed today
        push.send_to_user(
            user_id=client_id,
            title="Bestie favoritmu online",
            body=f"{mitra.display_name} sedang online. Mau curhat sekarang?",
            data={"type": "favourite.online", "mitra_id": str(mitra_id)},
        )
        sent += 1
    return sent
