"""The Valkey mirror kept incrementally equals what `seed_from_postgres()` builds from Postgres."""

import random

from django.conf import settings
from django.db import transaction

from mitras import mirror, services
from mitras.models import Mitra


def _assert_mirror_matches_postgres(step):
    kept = mirror.read_state()
    expected = mirror.build_from_postgres()
    assert kept.online == expected.online, step
    assert kept.capacity == expected.capacity, step
    # Heartbeats are liveness, not derivable: every online mitra must have one.
    assert expected.heartbeats <= kept.heartbeats, step


def test_it_keeps_the_keys_equal_to_a_reseed_through_a_random_sequence(
    transactional_db, fresh_mirror, make_mitra, loads
):
    rng = random.Random(20260501)
    mitras = [make_mitra(capacity=rng.randint(1, 4)) for _ in range(6)]
    _assert_mirror_matches_postgres("start")

    def fresh(mitra):
        return Mitra.objects.get(pk=mitra.pk)

    def set_online(mitra):
        mitra = fresh(mitra)
        if mitra.deactivated_at is None:
            services.mitra_set_online(mitra=mitra, is_online=True)

    def set_offline(mitra):
        mitra = fresh(mitra)
        if mitra.deactivated_at is None:
            services.mitra_set_online(mitra=mitra, is_online=False)

    def heartbeat(mitra):
        mitra = fresh(mitra)
        if mitra.deactivated_at is None:
            services.mitra_heartbeat(mitra=mitra)

    def deactivate(mitra):
        services.mitra_deactivate(mitra=mitra, actor=None)

    def reactivate(mitra):
        services.mitra_reactivate(mitra=mitra, actor=None)

    def change_capacity(mitra):
        services.mitra_update_profile(mitra=mitra, capacity=rng.randint(1, 5))

    def change_load(mitra):
        # As the sessions app does: change what occupies the mitra, tell the mirror in the same
        # transaction; sometimes that transaction rolls back.
        before = loads.get(mitra.id, 0)
        rolled_back = rng.random() < 0.2
        try:
            with transaction.atomic():
                loads[mitra.id] = max(0, before + rng.choice((-1, 1, 2)))
                mirror.mirror_capacity_changed(mitra.id)
                if rolled_back:
                    raise RuntimeError("rollback")
        except RuntimeError:
            loads[mitra.id] = before

    def sweep(mitra):
        services.mitras_sweep_stale(now=mitra.created_at)  # nobody is stale: a no-op

    def reseed(mitra):
        before = mirror.read_state()
        assert mirror.seed_from_postgres()
        after = mirror.read_state()
        assert (after.online, after.capacity) == (before.online, before.capacity)

    operations = [set_online, set_offline, heartbeat, deactivate, reactivate, change_capacity, change_load]
    weights = [5, 3, 4, 1, 2, 2, 6]
    counts = dict.fromkeys(op.__name__ for op in [*operations, sweep, reseed])
    for step in range(300):
        operation = rng.choices(operations, weights)[0]
        if step % 50 == 49:
            operation = reseed
        elif step % 37 == 36:
            operation = sweep
        mitra = rng.choice(mitras)
        operation(mitra)
        counts[operation.__name__] = (counts[operation.__name__] or 0) + 1
        _assert_mirror_matches_postgres(f"step {step}: {operation.__name__}({mitra.id})")

    assert all(counts.values()), counts  # every kind of operation ran
    final = mirror.build_from_postgres()
    assert final.online and any(final.capacity.values())
    assert Mitra.objects.filter(deactivated_at__isnull=False).exists()
    assert not fresh_mirror.exists(mirror.legacy_deactivated_key())  # never written


def test_it_rebuilds_lost_keys_with_a_reseed(transactional_db, fresh_mirror, make_mitra, loads):
    online, deactivated = make_mitra(), make_mitra()
    services.mitra_set_online(mitra=online, is_online=True)
    services.mitra_deactivate(mitra=deactivated, actor=None)
    with transaction.atomic():
        loads[online.id] = 2
        mirror.mirror_capacity_changed(online.id)
    fresh_mirror.delete(
        *fresh_mirror.scan_iter(match=f"{settings.VALKEY_KEY_PREFIX}*")
    )  # only this run's keys

    assert mirror.seed_from_postgres()

    state = mirror.read_state()
    assert state.online == {online.id}
    assert state.capacity == {online.id: 2, deactivated.id: 0}
    assert state.heartbeats == {online.id}
    assert fresh_mirror.ttl(mirror.heartbeat_key(online.id)) > 0


def test_it_never_counts_a_rolled_back_load_change(transactional_db, fresh_mirror, make_mitra, loads):
    mitra = make_mitra()
    try:
        with transaction.atomic():
            loads[mitra.id] = 3
            mirror.mirror_capacity_changed(mitra.id)
            raise RuntimeError("rollback")
    except RuntimeError:
        loads[mitra.id] = 0

    assert fresh_mirror.get(mirror.capacity_key(mitra.id)) == "0"
