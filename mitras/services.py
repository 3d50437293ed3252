"""Writes on mitras. Every state change of a mitra is one function here.

Decisions are made on the Postgres row under `select_for_update`; the Valkey mirror follows after
commit (mitras/mirror.py, through `post_save`), and so do the hooks other apps registered
(mitras/hooks.py). The one exception is the heartbeat: it is frequent, changes no decision by
itself, and goes to Valkey only (Postgres when Valkey is down), flushed later for forensics.
"""

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from halobestie.accounts.models import Role, User
from halobestie.accounts.phones import normalize_phone
from halobestie.audit.services import audit_record
from halobestie.errors import Forbidden, ServiceError
from halobestie.runtime.selectors import get_config
from mitras import hooks, mirror
from mitras.favourites import favourites_notify_online
from mitras.models import Gender, Mitra
from mitras.selectors import last_heartbeats

logger = logging.getLogger(__name__)

_UNCHANGED = object()
MAX_TAGS = 20
MAX_CAPACITY = 50


class MitraDeactivated(Forbidden):
    code = "mitra_deactivated"
    detail = "Akun mitra dinonaktifkan."


def _invalid(fields):
    return ServiceError("Data yang dikirim tidak valid.", code="validation_error", fields=fields)


def _tags(name, values, *, max_length):
    """A list of short lowercase words, without duplicates, in the given order."""
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise _invalid({name: ["Harus daftar teks."]})
    cleaned = []
    for value in values:
        value = value.strip().lower()
        if not value or len(value) > max_length:
            raise _invalid({name: [f"Setiap isian 1–{max_length} karakter."]})
        if value not in cleaned:
            cleaned.append(value)
    if len(cleaned) > MAX_TAGS:
        raise _invalid({name: [f"Paling banyak {MAX_TAGS} isian."]})
    return cleaned


def _profile_fields(**values):
    """Validate profile values (those given); returns them cleaned. Raises ServiceError."""
    cleaned = {}
    for name, value in values.items():
        if value is _UNCHANGED:
            continue
        if name == "display_name":
            value = (value or "").strip()
            if not value or len(value) > 100:
                raise _invalid({name: ["Nama wajib, paling banyak 100 karakter."]})
        elif name == "bio":
            value = (value or "").strip()
            if len(value) > 2000:
                raise _invalid({name: ["Paling banyak 2000 karakter."]})
        elif name == "avatar_url":
            value = (value or "").strip()
            if value:
                try:
                    URLValidator(schemes=["https", "http"])(value)
                except ValidationError:
                    raise _invalid({name: ["URL tidak valid."]}) from None
        elif name == "topics":
            value = _tags(name, value, max_length=50)
        elif name == "languages":
            value = _tags(name, value, max_length=8)
        elif name == "gender":
            if value not in Gender.values:
                raise _invalid({name: ["Pilihan tidak dikenal."]})
        elif name == "capacity" and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CAPACITY
        ):
            raise _invalid({name: [f"Harus bilangan bulat 1–{MAX_CAPACITY}."]})
        cleaned[name] = value
    return cleaned


def mitra_create(
    *,
    phone: str,
    password: str,
    display_name: str,
    bio: str = "",
    avatar_url: str = "",
    topics=(),
    languages=("id",),
    gender: str = "unspecified",
    capacity: int | None = None,
) -> Mitra:
    """Create a mitra account (staff only: mitras do not sign up). Raises ValidationError for a
    bad phone, ServiceError for a bad profile value; IntegrityError if the phone is taken."""
    phone = normalize_phone(phone)
    profile = _profile_fields(
        display_name=display_name,
        bio=bio,
        avatar_url=avatar_url,
        topics=list(topics),
        languages=list(languages),
        gender=gender,
        capacity=capacity or get_config().default_capacity,
    )
    # Hashed before the transaction: the hash is slow on purpose and must hold no lock.
    hashed = make_password(password) if password else None
    with transaction.atomic():
        user = User.objects.create_user(phone=phone, role=Role.MITRA, display_name=profile["display_name"])
        if hashed:
            user.password = hashed
            user.save(update_fields=["password"])
        return Mitra.objects.create(user=user, **profile)


def _lock(mitra) -> Mitra:
    return Mitra.objects.select_for_update().get(pk=mitra.pk)


def mitra_update_profile(
    *,
    mitra: Mitra,
    actor=None,
    display_name=_UNCHANGED,
    bio=_UNCHANGED,
    avatar_url=_UNCHANGED,
    topics=_UNCHANGED,
    languages=_UNCHANGED,
    gender=_UNCHANGED,
    capacity=_UNCHANGED,
) -> Mitra:
    """Change the given profile values (the others stay). Raises ServiceError
    (`validation_error`, per field) and changes nothing on a bad value. A raised capacity frees
    slots: the `on_mitra_available` hooks run after commit. With an actor (staff), audited."""
    changes = _profile_fields(
        display_name=display_name,
        bio=bio,
        avatar_url=avatar_url,
        topics=topics,
        languages=languages,
        gender=gender,
        capacity=capacity,
    )
    with transaction.atomic():
        locked = _lock(mitra)
        before = {name: getattr(locked, name) for name in changes}
        changed = {name: value for name, value in changes.items() if before[name] != value}
        if not changed:
            return locked
        for name, value in changed.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*changed, "updated_at"])
        if "display_name" in changed:
            User.objects.filter(pk=locked.user_id).update(display_name=changed["display_name"])
        if actor is not None:
            audit_record(
                actor=actor,
                action="mitra_update_profile",
                obj=locked,
                before={name: before[name] for name in changed},
                after=changed,
            )
        if changed.get("capacity", 0) > before.get("capacity", 0):
            transaction.on_commit(partial(hooks.notify_mitra_available, locked.pk))
    return locked


def mitra_set_online(*, mitra: Mitra, is_online: bool, now: datetime | None = None) -> Mitra:
    """The mitra's own switch. Going online counts as a heartbeat; after commit the
    `on_mitra_available` hooks run. Raises MitraDeactivated (403) for a deactivated mitra."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(mitra)
        if locked.deactivated_at is not None:
            raise MitraDeactivated()
        if is_online:
            if not locked.is_online:
                locked.online_since = now
                transaction.on_commit(partial(favourites_notify_online, locked.pk, now))
            locked.is_online = True
            locked.last_heartbeat_at = now
            locked.save(update_fields=["is_online", "online_since", "last_heartbeat_at", "updated_at"])
            transaction.on_commit(partial(_record_heartbeat, locked.pk, now))
            transaction.on_commit(partial(hooks.notify_mitra_available, locked.pk))
        elif locked.is_online:
            locked.is_online = False
            locked.online_since = None
            locked.save(update_fields=["is_online", "online_since", "updated_at"])
    return locked


def _record_heartbeat(mitra_id, now):
    # Postgres already holds this heartbeat; Valkey is only the faster copy.
    with contextlib.suppress(mirror.Unavailable):
        mirror.record_heartbeat(mitra_id, now, ttl_seconds=mirror.heartbeat_key_ttl())


def mitra_heartbeat(*, mitra: Mitra, now: datetime | None = None) -> datetime:
    """The mitra's app is alive. Cheap: one Valkey SET, no row lock, no Postgres write (the
    flush copies it later); when Valkey is down it writes `last_heartbeat_at` instead. The REST
    endpoint and the WebSocket `heartbeat` frame both call this.

    When the heartbeat brings back a presence that had lapsed, the beacon snapshot is dropped
    and the `on_mitra_available` hooks run (`mitra.is_online` as loaded decides that; a stale
    instance only delays the hint). Raises MitraDeactivated for a deactivated mitra (as loaded).
    Precondition: not inside a transaction that may roll back (nothing here is transactional).
    """
    if mitra.deactivated_at is not None:
        raise MitraDeactivated()
    now = now or timezone.now()
    config = get_config()
    try:
        previous = mirror.record_heartbeat(mitra.pk, now, ttl_seconds=mirror.heartbeat_key_ttl())
    except mirror.Unavailable:
        previous = mitra.last_heartbeat_at.timestamp() if mitra.last_heartbeat_at else None
        Mitra.objects.filter(pk=mitra.pk).update(last_heartbeat_at=now)
        mitra.last_heartbeat_at = now
    if mitra.is_online and (previous is None or now.timestamp() - previous >= config.heartbeat_ttl_seconds):
        mirror.invalidate_snapshot()
        hooks.notify_mitra_available(mitra.pk)
    return now


def mitra_deactivate(*, mitra: Mitra, actor) -> Mitra:
    """Staff take the mitra out: offline at once, out of availability, every token refused
    (access tokens by the authentication class on each request, refresh tokens blacklisted
    here). Idempotent. After commit the `on_mitra_deactivated` hooks run (sessions withdraw
    offers, realtime closes sockets). Precondition: the caller checked the actor's permission."""
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(mitra)
        if locked.deactivated_at is not None:
            return locked
        was_online = locked.is_online
        locked.deactivated_at = now
        locked.is_online = False
        locked.online_since = None
        locked.save(update_fields=["deactivated_at", "is_online", "online_since", "updated_at"])
        BlacklistedToken.objects.bulk_create(
            [
                BlacklistedToken(token=token)
                for token in OutstandingToken.objects.filter(
                    user_id=locked.user_id, blacklistedtoken__isnull=True
                )
            ],
            ignore_conflicts=True,
        )
        audit_record(
            actor=actor,
            action="mitra_deactivate",
            obj=locked,
            before={"deactivated_at": None, "is_online": was_online},
            after={"deactivated_at": now, "is_online": False},
        )
        transaction.on_commit(partial(hooks.notify_mitra_deactivated, locked.pk))
    logger.info("mitra deactivated", extra={"mitra_id": locked.pk, "actor_id": getattr(actor, "pk", None)})
    return locked


def mitra_reactivate(*, mitra: Mitra, actor) -> Mitra:
    """Staff let the mitra back in. It stays offline until it switches itself online (and must
    log in again: its refresh tokens were blacklisted). Idempotent. After commit the
    `on_mitra_available` hooks run. Precondition: the caller checked the actor's permission."""
    with transaction.atomic():
        locked = _lock(mitra)
        if locked.deactivated_at is None:
            return locked
        before = locked.deactivated_at
        locked.deactivated_at = None
        locked.save(update_fields=["deactivated_at", "updated_at"])
        audit_record(
            actor=actor,
            action="mitra_reactivate",
            obj=locked,
            before={"deactivated_at": before},
            after={"deactivated_at": None},
        )
        transaction.on_commit(partial(hooks.notify_mitra_available, locked.pk))
    logger.info("mitra reactivated", extra={"mitra_id": locked.pk, "actor_id": getattr(actor, "pk", None)})
    return locked


def mitras_sweep_stale(*, now: datetime) -> list:
    """Switch offline every online mitra whose last heartbeat (Valkey, else Postgres) is older
    than `heartbeat_ttl_seconds + stale_grace_seconds`. Returns the ids switched offline.

    Safe with several scheduler replicas: rows locked elsewhere (another sweeper, or a service
    changing that mitra) are skipped this round, and the staleness is checked again under the
    lock. When Valkey is down the Postgres values decide: run `mitras_flush_heartbeats` well
    within `stale_grace_seconds` (heartbeats themselves go to Postgres during an outage).
    """
    config = get_config()
    limit = timedelta(seconds=config.heartbeat_ttl_seconds + config.stale_grace_seconds)

    def stale(mitras):
        beats = last_heartbeats(mitras)
        return {m.id for m in mitras if beats[m.id] is None or now - beats[m.id] > limit}

    columns = ("id", "is_online", "deactivated_at", "last_heartbeat_at")
    candidates = stale(list(Mitra.objects.filter(is_online=True).only(*columns)))
    if not candidates:
        return []
    swept = []
    with transaction.atomic():
        locked = list(
            Mitra.objects.select_for_update(skip_locked=True)
            .filter(pk__in=candidates, is_online=True)
            .order_by("pk")
        )
        still_stale = stale(locked)
        for mitra in locked:
            if mitra.id not in still_stale:
                continue
            mitra.is_online = False
            mitra.online_since = None
            mitra.save(update_fields=["is_online", "online_since", "updated_at"])
            swept.append(mitra.id)
    if swept:
        logger.info("stale mitras switched offline", extra={"mitra_ids": swept})
    return swept


def mitras_flush_heartbeats() -> int:
    """Copy Valkey heartbeats into `last_heartbeat_at` (forensics, and the sweeper's view while
    Valkey is down); only ever moves a value forward. Returns how many rows changed. For the
    scheduler, every ~10 s (well within `stale_grace_seconds`)."""
    try:
        beats = mirror.read_all_heartbeats()
    except mirror.Unavailable:
        return 0
    changed = []
    for mitra in Mitra.objects.filter(pk__in=list(beats)).only("id", "last_heartbeat_at"):
        at = datetime.fromtimestamp(beats[mitra.id], tz=UTC)
        if mitra.last_heartbeat_at is None or at > mitra.last_heartbeat_at:
            mitra.last_heartbeat_at = at
            changed.append(mitra)
    if changed:
        Mitra.objects.bulk_update(changed, ["last_heartbeat_at"])
    return len(changed)


def mitra_load_change(*, mitra_id, delta: int) -> None:
    """Add `delta` to the mitra's load (`Mitra.load`, an UPDATE with F(): it takes the mitra's
    row lock for the rest of the transaction). Precondition: inside the transaction that changed
    which sessions occupy the mitra, the session row locked first. The Valkey mirror is set from
    the committed column after commit; on rollback nothing changed."""
    mitra_loads_change(deltas={mitra_id: delta})


def mitra_loads_change(*, deltas: dict, assigned_at: datetime | None = None) -> None:
    """mitra_load_change for several mitras in one UPDATE (`deltas`: {mitra_id: delta}; a
    dispatch's offers), with the same precondition; `assigned_at`, when given, is each one's new
    `last_assigned_at` (set in the same statement)."""
    deltas = {mitra_id: delta for mitra_id, delta in deltas.items() if mitra_id is not None and delta}
    if not deltas:
        return
    if len(deltas) == 1:
        change = Value(next(iter(deltas.values())))
    else:
        change = Case(*(When(pk=mitra_id, then=Value(delta)) for mitra_id, delta in deltas.items()))
    changes = {"load": F("load") + change}
    if assigned_at is not None:
        changes["last_assigned_at"] = assigned_at
    Mitra.objects.filter(pk__in=list(deltas)).update(**changes)
    mirror.mirror_capacities_changed(list(deltas))


HEARTBEAT_FLUSH_SECONDS = 10
_last_flush = {"at": 0.0}


def _flush_heartbeats(now):
    """Copy Valkey heartbeats to Postgres (forensics) every HEARTBEAT_FLUSH_SECONDS."""
    if time.monotonic() - _last_flush["at"] < HEARTBEAT_FLUSH_SECONDS:
        return None
    _last_flush["at"] = time.monotonic()
    return mitras_flush_heartbeats()


def scheduler_jobs():
    """(name, job(now=…)) pairs for the project scheduler (halobestie/scheduler.py), in order."""
    return [
        ("mitras_sweep_stale", lambda now: mitras_sweep_stale(now=now)),
        ("heartbeat_flush", _flush_heartbeats),
    ]
