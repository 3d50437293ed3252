"""The Valkey mirror of mitra availability: the hot read path, never the source of truth.

Keys (names from the runbook; each goes through `halobestie.integrations.valkey.key()` for the prefix):
- `mitras:online`        set of ids toggled online and not deactivated (read by the heartbeat
                         flush: whose heartbeats matter)
- `mitra:capacity:<id>`  sessions occupying the mitra now ("load"; every mitra has one)
- `mitra:heartbeat:<id>` last heartbeat, epoch seconds, with a TTL (transient liveness: Postgres
                         holds it only as `last_heartbeat_at`, flushed periodically)
- `availability:snapshot` the beacon's JSON, a few seconds

Writes happen after commit: a `post_save` on Mitra re-reads the row and sets the keys (so a
late callback writes today's truth, not the value it was handed); sessions call
`mirror_capacity_changed()` inside their transactions and the load is read from Postgres
(`Mitra.load`) after commit (SET, never INCR/DECR, so the key cannot drift). `seed_from_postgres()` rebuilds
everything on start and after Valkey comes back.

A restart that no failed call saw (Valkey back empty before anyone asked) is noticed by the
background checker from Valkey's `run_id`, which it compares every CHECK_INTERVAL_SECONDS.

Failure handling: a Valkey error never fails a request. It is logged (once per outage), counted
in `valkey_fallbacks`, the mirror is marked dirty, and for `RETRY_SECONDS` no call goes to Valkey
at all (so a dead Valkey costs requests nothing). Readers then use Postgres. The next call after
that pause, or the background checker started with the server, reseeds from Postgres.
Without VALKEY_URL the mirror is off and every reader uses Postgres.
"""

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import redis
from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from halobestie.integrations import valkey
from halobestie.runtime.selectors import get_config
from halobestie.server import metrics
from mitras.load import mitra_loads
from mitras.models import Mitra

logger = logging.getLogger(__name__)

SNAPSHOT_TTL_SECONDS = 3
RETRY_SECONDS = 1.0
CHECK_INTERVAL_SECONDS = 1.0

# Valkey operations that failed or were skipped, the reader using Postgres instead (a metric).
valkey_fallbacks = 0

_state_lock = threading.Lock()
_seed_lock = threading.Lock()
_dirty = True  # the keys may not match Postgres: seed before trusting them (start-up, outage)
_retry_at = 0.0  # monotonic time before which Valkey is not tried again
_checker_started = threading.Event()


class Unavailable(Exception):
    """The mirror cannot answer (off, down, or pausing after a failure): use Postgres."""


def online_key():
    return valkey.key("mitras:online")


def legacy_deactivated_key():
    """A set of deactivated ids that nothing ever read (Postgres answers that): no longer
    written, deleted at every seed."""
    return valkey.key("mitras:deactivated")


def snapshot_key():
    return valkey.key("availability:snapshot")


def capacity_key(mitra_id):
    return valkey.key(f"mitra:capacity:{mitra_id}")


def heartbeat_key(mitra_id):
    return valkey.key(f"mitra:heartbeat:{mitra_id}")


def is_enabled():
    return valkey.is_enabled()


def is_dirty():
    return _dirty


# Calling Valkey ---------------------------------------------------------------------------------


def _count_fallback():
    global valkey_fallbacks
    with _state_lock:
        valkey_fallbacks += 1
    metrics.VALKEY_FALLBACKS.inc()


def _failed(exc, what):
    global _dirty, _retry_at
    with _state_lock:
        first = not _dirty or _retry_at == 0.0
        _dirty = True
        _retry_at = time.monotonic() + RETRY_SECONDS
    _count_fallback()
    # One warning per outage is enough; the counter tells how many calls it cost.
    log = logger.warning if first else logger.debug
    log("valkey unavailable, using Postgres", extra={"operation": what, "error": type(exc).__name__})


def _call(what, operation):
    """operation(client) on Valkey. Raises Unavailable (already logged and counted) instead of
    any Valkey error."""
    if not is_enabled():
        raise Unavailable(what)
    if time.monotonic() < _retry_at:
        _count_fallback()
        raise Unavailable(what)
    if _dirty:
        _reseed_if_dirty()
        if time.monotonic() < _retry_at:  # the reseed just failed: do not knock twice
            _count_fallback()
            raise Unavailable(what)
    try:
        return operation(valkey.get_client())
    except (redis.RedisError, OSError) as exc:
        _failed(exc, what)
        raise Unavailable(what) from exc


def _write(what, operation):
    """A mirror write: failures are swallowed (the mirror is dirty and will be reseeded)."""
    with contextlib.suppress(Unavailable):
        _call(what, operation)


# Seeding -----------------------------------------------------------------------------------------


@dataclass
class MirrorState:
    """The mirror's keys as ids and values (heartbeats: the ids that have one)."""

    online: set = field(default_factory=set)
    capacity: dict = field(default_factory=dict)
    heartbeats: set = field(default_factory=set)


def build_from_postgres() -> MirrorState:
    """What the keys must hold according to Postgres (heartbeats: every online mitra has one)."""
    rows = list(Mitra.objects.values_list("id", "is_online", "deactivated_at"))
    loads = mitra_loads([row[0] for row in rows])
    online = {
        mitra_id for mitra_id, is_online, deactivated_at in rows if is_online and deactivated_at is None
    }
    return MirrorState(
        online=online,
        capacity={mitra_id: loads[mitra_id] for mitra_id, _, _ in rows},
        heartbeats=set(online),
    )


def _ids_of(client, pattern):
    prefix_length = len(valkey.key(pattern)) - 1
    return {int(name[prefix_length:]) for name in client.scan_iter(match=valkey.key(pattern), count=500)}


def read_state() -> MirrorState:
    """The keys as Valkey holds them now. Raises Unavailable."""

    def read(client):
        capacity_ids = sorted(_ids_of(client, "mitra:capacity:*"))
        values = client.mget([capacity_key(i) for i in capacity_ids]) if capacity_ids else []
        return MirrorState(
            online={int(i) for i in client.smembers(online_key())},
            capacity={i: int(v) for i, v in zip(capacity_ids, values, strict=True) if v is not None},
            heartbeats=_ids_of(client, "mitra:heartbeat:*"),
        )

    return _call("read_state", read)


def seed_from_postgres(*, heartbeat_ttl_seconds=None) -> bool:
    """Rebuild every key from Postgres. Returns False (logged, counted) when Valkey is down.

    The sets and the capacity keys are replaced in one MULTI, so readers never see a half-built
    set. Online mitras without a heartbeat key get NOW, as the runbook says (after a Valkey
    restart nothing else knows their liveness); an existing heartbeat is kept, so a reconnect
    after a network blip does not make a silent mitra look alive. Precondition: not inside a
    transaction (it must read committed rows).
    """
    global _dirty, _retry_at
    if not is_enabled():
        return False
    # Cleared before reading Postgres: a failure during the seed marks it dirty again.
    with _state_lock:
        _dirty = False
    try:
        ttl = heartbeat_ttl_seconds or heartbeat_key_ttl()
        state = build_from_postgres()
        client = valkey.get_client()
        stale_capacity = _ids_of(client, "mitra:capacity:*") - set(state.capacity)
        now = str(round(time.time(), 3))
        pipe = client.pipeline(transaction=True)
        pipe.delete(online_key(), legacy_deactivated_key(), snapshot_key())
        if stale_capacity:
            pipe.delete(*[capacity_key(i) for i in stale_capacity])
        if state.online:
            pipe.sadd(online_key(), *state.online)
        for mitra_id, load in state.capacity.items():
            pipe.set(capacity_key(mitra_id), load)
        for mitra_id in state.online:
            pipe.set(heartbeat_key(mitra_id), now, ex=ttl, nx=True)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _failed(exc, "seed")
        return False
    with _state_lock:
        _retry_at = 0.0
    metrics.MIRROR_RESEEDS.inc()
    logger.info("valkey mirror seeded from Postgres", extra={"mitras": len(state.capacity)})
    return True


def _reseed_if_dirty():
    # Inside a transaction a seed would read uncommitted rows: leave it to the next call.
    if connection.in_atomic_block or not _seed_lock.acquire(blocking=False):
        return
    try:
        if _dirty:
            seed_from_postgres()
    finally:
        _seed_lock.release()


def check_and_reseed() -> bool:
    """If the mirror is dirty and Valkey answers, reseed. Returns True when it reseeded. The
    background checker calls this every second; it ignores the pause after a failure."""
    if not is_enabled() or not _dirty:
        return False
    try:
        valkey.get_client().ping()
    except (redis.RedisError, OSError):
        return False
    with _seed_lock:
        return bool(_dirty) and seed_from_postgres()


def start_background_checker():
    """Start (once per process) the daemon thread that reseeds when Valkey comes back, so the
    keys are rebuilt even when no request touches the mirror."""
    if not is_enabled() or _checker_started.is_set():
        return
    _checker_started.set()
    threading.Thread(target=_check_forever, name="valkey-mirror-checker", daemon=True).start()


_last_run_id = {"value": None}


def notice_restart() -> bool:
    """Compare Valkey's `run_id` with the one seen last (as the realtime watchdog does): a
    restart that no failed call saw (quicker than the next mirror call, or with no call at all)
    leaves an empty mirror that nobody marked dirty. Marks it dirty and returns True then."""
    global _dirty
    try:
        run_id = valkey.get_client().info("server").get("run_id")
    except (redis.RedisError, OSError):
        return False  # down: the next call (or the checker's ping) handles it
    previous, _last_run_id["value"] = _last_run_id["value"], run_id
    if previous is None or previous == run_id:
        return False
    with _state_lock:
        _dirty = True
    logger.warning("valkey restarted (run_id changed): reseeding the mirror")
    return True


def _check_forever():
    while True:
        time.sleep(CHECK_INTERVAL_SECONDS)
        try:
            notice_restart()
            if _dirty:
                check_and_reseed()
        except Exception:
            logger.exception("valkey mirror reseed failed")
        finally:
            close_old_connections()


async def on_server_start(listener):
    """Lifespan hook: seed once at start (blocking work off the event loop), then watch."""
    if not is_enabled():
        return

    def seed():
        global _dirty
        try:
            with _seed_lock:
                seed_from_postgres()
        except DatabaseError:
            # E.g. a new image before its one-off migrate: /readyz says 503 meanwhile, and the
            # background checker seeds once the database answers.
            logger.warning("mirror seed at start-up failed: database not ready", exc_info=True)
            with _state_lock:
                _dirty = True
        finally:
            close_old_connections()

    await sync_to_async(seed, thread_sensitive=False)()
    start_background_checker()


# Incremental writes (after commit) ---------------------------------------------------------------


def heartbeat_key_ttl():
    """Long enough that the sweeper and the flush always see a heartbeat before it expires."""
    config = get_config()
    return 2 * (config.heartbeat_ttl_seconds + config.stale_grace_seconds)


def sync_mitra(mitra_id):
    """Set the mitra's keys from its committed row (and its load), drop the snapshot."""
    if not is_enabled():
        return
    row = Mitra.objects.filter(pk=mitra_id).values("is_online", "deactivated_at").first()
    load = mitra_loads([mitra_id])[mitra_id] if row else None

    def write(client):
        pipe = client.pipeline(transaction=True)
        if row is None:
            pipe.srem(online_key(), mitra_id)
            pipe.delete(capacity_key(mitra_id), heartbeat_key(mitra_id))
        else:
            is_deactivated = row["deactivated_at"] is not None
            if row["is_online"] and not is_deactivated:
                pipe.sadd(online_key(), mitra_id)
            else:
                pipe.srem(online_key(), mitra_id)
            pipe.set(capacity_key(mitra_id), load)
        pipe.delete(snapshot_key())
        pipe.execute()

    _write("sync_mitra", write)


def sync_load(mitra_id):
    """Read the mitra's load in Postgres (its column) and SET `mitra:capacity:<id>`; drop the snapshot."""
    sync_loads([mitra_id])


def sync_loads(mitra_ids):
    """sync_load for several mitras: one query, one Valkey round trip."""
    if not is_enabled() or not mitra_ids:
        return
    loads = mitra_loads(mitra_ids)

    def write(client):
        pipe = client.pipeline(transaction=True)
        for mitra_id, load in loads.items():
            pipe.set(capacity_key(mitra_id), load)
        pipe.delete(snapshot_key())
        pipe.execute()

    _write("sync_load", write)


def mirror_capacity_changed(mitra_id):
    """For the sessions app: call inside the transaction that changed which sessions occupy the
    mitra. After commit the load is read from Postgres (the `Mitra.load` column, via `mitra_loads`)
    and SET; on rollback nothing happens. Idempotent: calling it twice costs a read, never a drift."""
    mirror_capacities_changed([mitra_id])


def mirror_capacities_changed(mitra_ids):
    """mirror_capacity_changed for several mitras (a dispatch's offers): one read and one write
    after commit."""
    mitra_ids = [mitra_id for mitra_id in mitra_ids if mitra_id is not None]
    if not is_enabled() or not mitra_ids:
        return
    transaction.on_commit(partial(sync_loads, mitra_ids), robust=True)


def record_heartbeat(mitra_id, at: datetime, *, ttl_seconds: int):
    """SET `mitra:heartbeat:<id>` (with a TTL); returns the previous heartbeat as epoch seconds,
    or None. Raises Unavailable."""
    value = str(round(at.timestamp(), 3))
    previous = _call(
        "heartbeat", lambda client: client.set(heartbeat_key(mitra_id), value, ex=ttl_seconds, get=True)
    )
    return float(previous) if previous is not None else None


def read_live(mitra_ids):
    """({id: last heartbeat epoch or None}, {id: load or None}) for these mitras, in one round
    trip. None where the key is missing. Raises Unavailable."""
    mitra_ids = list(mitra_ids)
    if not mitra_ids:
        return {}, {}

    def read(client):
        pipe = client.pipeline(transaction=False)
        pipe.mget([heartbeat_key(i) for i in mitra_ids])
        pipe.mget([capacity_key(i) for i in mitra_ids])
        return pipe.execute()

    beats, loads = _call("read_live", read)
    return (
        {i: float(v) if v is not None else None for i, v in zip(mitra_ids, beats, strict=True)},
        {i: int(v) if v is not None else None for i, v in zip(mitra_ids, loads, strict=True)},
    )


def read_all_heartbeats() -> dict:
    """{mitra_id: last heartbeat epoch} of the online mitras (`mitras:online`: theirs are the
    heartbeats that matter, and a set read beats a SCAN of the keyspace). Raises Unavailable."""

    def read(client):
        ids = sorted(int(i) for i in client.smembers(online_key()))
        values = client.mget([heartbeat_key(i) for i in ids]) if ids else []
        return {i: float(v) for i, v in zip(ids, values, strict=True) if v is not None}

    return _call("read_heartbeats", read)


def get_snapshot():
    """The cached beacon JSON, or None. Raises Unavailable."""
    return _call("snapshot_get", lambda client: client.get(snapshot_key()))


def put_snapshot(body: str):
    _write("snapshot_put", lambda client: client.set(snapshot_key(), body, ex=SNAPSHOT_TTL_SECONDS))


def invalidate_snapshot():
    _write("snapshot_delete", lambda client: client.delete(snapshot_key()))


# Signals: the mirror only (no business rules here) -----------------------------------------------


@receiver(post_save, sender=Mitra, dispatch_uid="mitras.mirror.saved")
def _mitra_saved(sender, instance, **kwargs):
    if is_enabled():
        transaction.on_commit(partial(sync_mitra, instance.pk), robust=True)


@receiver(post_delete, sender=Mitra, dispatch_uid="mitras.mirror.deleted")
def _mitra_deleted(sender, instance, **kwargs):
    if is_enabled():
        transaction.on_commit(partial(sync_mitra, instance.pk), robust=True)
