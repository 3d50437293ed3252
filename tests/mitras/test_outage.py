"""Valkey dies mid-test: every reader answers from Postgres; when it returns, the keys are
rebuilt without a restart. A throwaway redis-server/valkey-server on a free port plays Valkey."""

import time

import pytest
from django.db import transaction

from halobestie.integrations import valkey
from mitras import mirror, services
from tests.conftest import auth_client
from tests.servers import ThrowawayValkey


@pytest.fixture
def throwaway_valkey(settings, tmp_path):
    server = ThrowawayValkey(tmp_path)
    server.start()
    original = settings.VALKEY_URL
    settings.VALKEY_URL = server.url
    valkey.reset_client()
    assert mirror.seed_from_postgres()
    yield server
    server.kill()
    settings.VALKEY_URL = original
    valkey.reset_client()
    mirror.seed_from_postgres()  # leave the mirror clean on the real Valkey for the next tests


def _state_of_the_world(api, mitras):
    beacon = api.get("/api/v1/availability")
    listing = api.get("/api/v1/mitras")
    details = [api.get(f"/api/v1/mitras/{m.id}") for m in mitras]
    assert [beacon.status_code, listing.status_code, *[d.status_code for d in details]] == [200] * (
        2 + len(mitras)
    )
    body = beacon.json()
    return (
        (body["online"], body["available"], body["busy"]),
        {m["id"]: (m["is_online"], m["is_available"]) for m in listing.json()["results"]},
        {d.json()["id"]: (d.json()["is_online"], d.json()["is_available"]) for d in details},
    )


def test_it_answers_from_postgres_while_valkey_is_down_and_reseeds_when_it_returns(
    transactional_db, throwaway_valkey, make_mitra, loads, api
):
    free, full, resting, gone = (make_mitra(capacity=2), make_mitra(capacity=1), make_mitra(), make_mitra())
    services.mitra_set_online(mitra=free, is_online=True)
    services.mitra_set_online(mitra=full, is_online=True)
    services.mitra_deactivate(mitra=gone, actor=None)
    with transaction.atomic():
        loads[free.id], loads[full.id] = 1, 1
        mirror.mirror_capacity_changed(free.id)
        mirror.mirror_capacity_changed(full.id)
    before_outage = _state_of_the_world(api, [free, full, resting])
    assert before_outage == (
        (2, 1, 1),
        {free.id: (True, True), full.id: (True, False), resting.id: (False, False)},
        {free.id: (True, True), full.id: (True, False), resting.id: (False, False)},
    )
    fallbacks = mirror.valkey_fallbacks

    throwaway_valkey.kill()

    assert _state_of_the_world(api, [free, full, resting]) == before_outage
    assert mirror.valkey_fallbacks > fallbacks
    assert mirror.is_dirty()
    # The mitra endpoints work, and what they change shows at once.
    resting_client = auth_client(resting.user)
    switched = resting_client.post("/api/v1/mitra/status", {"online": True}, format="json")
    beat = resting_client.post("/api/v1/mitra/heartbeat")
    me = auth_client(free.user).get("/api/v1/mitra/me")
    assert (switched.status_code, switched.json()["is_present"], beat.status_code) == (200, True, 200)
    assert (me.status_code, me.json()["load"], me.json()["is_available"]) == (200, 1, True)
    resting.refresh_from_db()
    assert resting.last_heartbeat_at is not None
    with transaction.atomic():
        loads[free.id] = 2
        mirror.mirror_capacity_changed(free.id)
    during_outage = _state_of_the_world(api, [free, full, resting])
    assert during_outage == (
        (3, 1, 2),
        {free.id: (True, False), full.id: (True, False), resting.id: (True, True)},
        {free.id: (True, False), full.id: (True, False), resting.id: (True, True)},
    )

    throwaway_valkey.start()  # an empty Valkey, as after a restart
    time.sleep(mirror.RETRY_SECONDS + 0.1)

    assert _state_of_the_world(api, [free, full, resting]) == during_outage
    assert not mirror.is_dirty()
    state = mirror.read_state()
    expected = mirror.build_from_postgres()
    assert (state.online, state.capacity) == (
        {free.id, full.id, resting.id},
        {free.id: 2, full.id: 1, resting.id: 0, gone.id: 0},
    )
    assert (state.online, state.capacity) == (expected.online, expected.capacity)
    assert state.heartbeats == {free.id, full.id, resting.id}


def test_it_reseeds_from_the_background_checker_when_valkey_returns(
    transactional_db, throwaway_valkey, make_mitra
):
    mitra = make_mitra()
    throwaway_valkey.kill()
    services.mitra_set_online(mitra=mitra, is_online=True)  # the mirror write fails: dirty
    assert mirror.is_dirty()
    assert mirror.check_and_reseed() is False  # still down

    throwaway_valkey.start()

    assert mirror.check_and_reseed() is True
    assert not mirror.is_dirty()
    assert mirror.read_state().online == {mitra.id}


def test_it_notices_a_restart_no_call_saw_from_the_run_id_and_reseeds(
    transactional_db, throwaway_valkey, make_mitra
):
    mitra = make_mitra()
    services.mitra_set_online(mitra=mitra, is_online=True)
    assert mirror.notice_restart() is False  # the first look only learns the run_id
    assert mirror.read_state().online == {mitra.id}

    # Valkey restarts empty between two mirror calls: no call failed, nothing is marked dirty.
    throwaway_valkey.kill()
    throwaway_valkey.start()
    assert not mirror.is_dirty()
    assert valkey.get_client().smembers(mirror.online_key()) == set()

    assert mirror.notice_restart() is True
    assert mirror.is_dirty()
    assert mirror.check_and_reseed() is True
    assert mirror.read_state().online == {mitra.id}
    assert mirror.notice_restart() is False  # the same server since
