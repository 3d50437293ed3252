"""Reads on mitras: presence, availability, public profiles and the beacon.

Presence: a mitra is present when toggled online (`is_online`), not deactivated, and its last
heartbeat is younger than `heartbeat_ttl_seconds`. The last heartbeat is the later of Valkey's
`mitra:heartbeat:<id>` and Postgres' `last_heartbeat_at`; loads come from Valkey's
`mitra:capacity:<id>`, else from Postgres through `mitra_loads`. Available: present, load
below capacity and not resting (mitras/rest.py). Every read here answers from Postgres when Valkey is down.
"""

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone
from rest_framework.fields import DateTimeField

from halobestie.errors import NotFound
from halobestie.runtime.selectors import get_config
from mitras import mirror, schedule
from mitras.load import mitra_loads
from mitras.models import Mitra
from mitras.rest import is_resting


@dataclass(frozen=True)
class Presence:
    is_online: bool  # toggled online (the mitra's own switch)
    is_present: bool  # toggled online, not deactivated, heartbeat fresh
    is_available: bool  # present with a free slot, not resting
    load: int
    last_heartbeat_at: datetime | None


def _later(postgres_value, valkey_epoch):
    if valkey_epoch is None:
        return postgres_value
    from_valkey = datetime.fromtimestamp(valkey_epoch, tz=UTC)
    return from_valkey if postgres_value is None or from_valkey > postgres_value else postgres_value


def last_heartbeats(mitras) -> dict:
    """{id: last heartbeat (datetime) or None}: the later of Valkey and Postgres."""
    try:
        beats, _ = mirror.read_live([m.id for m in mitras])
    except mirror.Unavailable:
        beats = {}
    return {m.id: _later(m.last_heartbeat_at, beats.get(m.id)) for m in mitras}


def presence_of(mitras, *, now=None) -> dict:
    """{mitra.id: Presence} for Mitra rows already loaded (they need `is_online`,
    `deactivated_at`, `capacity`, `last_heartbeat_at`, `rest_until`). One Valkey round trip; Postgres for
    whatever Valkey cannot answer."""
    mitras = list(mitras)
    if not mitras:
        return {}
    now = now or timezone.now()
    ttl = get_config().heartbeat_ttl_seconds
    try:
        beats, loads = mirror.read_live([m.id for m in mitras])
    except mirror.Unavailable:
        beats, loads = {}, {}
    missing = [m.id for m in mitras if loads.get(m.id) is None]
    if missing:
        loads.update(mitra_loads(missing))
    result = {}
    for mitra in mitras:
        last = _later(mitra.last_heartbeat_at, beats.get(mitra.id))
        is_present = (
            mitra.is_online
            and mitra.deactivated_at is None
            and last is not None
            and (now - last).total_seconds() < ttl
        )
        load = loads[mitra.id]
        result[mitra.id] = Presence(
            is_online=mitra.is_online and mitra.deactivated_at is None,
            is_present=is_present,
            is_available=is_present and load < mitra.capacity and not is_resting(mitra, now=now),
            load=load,
            last_heartbeat_at=last,
        )
    return result


def mitra_presence(*, mitra, now=None) -> Presence:
    return presence_of([mitra], now=now)[mitra.id]


# Public profiles ---------------------------------------------------------------------------------


def _normalized(value):
    return (value or "").strip().lower()


def mitra_list_public(*, topic=None, language=None, available=False, now=None) -> list:
    """Active (not deactivated) mitras, online first, optionally only those with a topic or
    language (exact, case-insensitive) or only the available ones.

    JSON `contains` is a PostgreSQL lookup; on the SQLite development default the same filter
    runs in Python.
    """
    queryset = (
        Mitra.objects.filter(deactivated_at__isnull=True)
        .prefetch_related("working_hours")
        .order_by("-is_online", "id")
    )
    if available:
        queryset = queryset.filter(is_online=True)
    topic, language = _normalized(topic), _normalized(language)
    if connection.vendor == "postgresql":
        if topic:
            queryset = queryset.filter(topics__contains=[topic])
        if language:
            queryset = queryset.filter(languages__contains=[language])
        mitras = list(queryset)
    else:
        mitras = [
            m
            for m in queryset
            if (not topic or topic in m.topics) and (not language or language in m.languages)
        ]
    if available:
        presence = presence_of(mitras, now=now)
        mitras = [m for m in mitras if presence[m.id].is_available]
    return mitras


def mitra_get_public(*, mitra_id) -> Mitra:
    """The mitra, unless deactivated or unknown (NotFound either way: nothing tells them apart)."""
    mitra = (
        Mitra.objects.filter(pk=mitra_id, deactivated_at__isnull=True)
        .prefetch_related("working_hours")
        .first()
    )
    if mitra is None:
        raise NotFound("Bestie tidak ditemukan.", code="mitra_not_found")
    return mitra


# The beacon --------------------------------------------------------------------------------------

_datetime_field = DateTimeField()


def mitras_present(*, now=None) -> list:
    """[(mitra, Presence)] of every present mitra (toggled online, not deactivated, heartbeat
    fresh): the one definition of "online" the beacon and the control center's dashboard share."""
    mitras = list(
        Mitra.objects.filter(is_online=True, deactivated_at__isnull=True).only(
            "id",
            "display_name",
            "is_online",
            "deactivated_at",
            "capacity",
            "last_heartbeat_at",
            "rest_until",  # presence: a resting Bestie is not available
            "topics",  # the beacon's counts per topic and language
            "languages",
        )
    )
    presence = presence_of(mitras, now=now)
    return [(mitra, presence[mitra.id]) for mitra in mitras if presence[mitra.id].is_present]


def availability_compute(*, now=None) -> dict:
    """The beacon from the rows: {online, available, busy, available_by_language,
    available_by_topic, next_available_at, updated_at}.

    `available_by_language` / `available_by_topic`: how many available Besties (present, a free
    slot) speak each language / take each topic (only those with at least one).
    `next_available_at`: when nobody is online, the earliest next start of any active Bestie's
    working hours (mitras/schedule.py), else null; null too when no Bestie has hours."""
    now = now or timezone.now()
    present = mitras_present(now=now)
    online = len(present)
    available = [mitra for mitra, presence in present if presence.is_available]
    next_start = schedule.next_scheduled_start(now=now) if online == 0 else None
    return {
        "online": online,
        "available": len(available),
        "busy": online - len(available),
        "available_by_language": _counts(m.languages for m in available),
        "available_by_topic": _counts(m.topics for m in available),
        "next_available_at": _datetime_field.to_representation(next_start) if next_start else None,
        "updated_at": _datetime_field.to_representation(now),
    }


def _counts(lists) -> dict:
    counts = Counter(value for values in lists for value in set(values))
    return dict(sorted(counts.items()))


def availability_beacon_json() -> str:
    """The beacon as JSON text: the cached snapshot when there is one (no database work at
    all), else computed and cached for a few seconds; computed each time when Valkey is down."""
    try:
        cached = mirror.get_snapshot()
    except mirror.Unavailable:
        return json.dumps(availability_compute())
    if cached is not None:
        return cached
    body = json.dumps(availability_compute())
    mirror.put_snapshot(body)
    return body
