"""Presence, heartbeats, the stale sweeper, the heartbeat flush, deactivation and profiles."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from halobestie.accounts.tokens import tokens_for
from halobestie.audit.models import AuditEntry
from halobestie.errors import ServiceError
from mitras import mirror, selectors, services
from mitras.models import Mitra
from tests.conftest import auth_client

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)


def _valkey_heartbeat(valkey, mitra):
    value = valkey.get(mirror.heartbeat_key(mitra.id))
    return float(value) if value is not None else None


def test_it_counts_going_online_as_a_heartbeat(transactional_db, fresh_mirror, make_mitra, available_calls):
    mitra = make_mitra()

    services.mitra_set_online(mitra=mitra, is_online=True, now=T0)

    mitra.refresh_from_db()
    assert (mitra.is_online, mitra.online_since, mitra.last_heartbeat_at) == (True, T0, T0)
    assert _valkey_heartbeat(fresh_mirror, mitra) == T0.timestamp()
    assert fresh_mirror.smembers(mirror.online_key()) == {str(mitra.id)}
    presence = selectors.mitra_presence(mitra=mitra, now=T0 + timedelta(seconds=1))
    assert (presence.is_online, presence.is_present, presence.is_available, presence.load) == (
        True,
        True,
        True,
        0,
    )
    assert available_calls == [mitra.id]


def test_it_loses_presence_when_the_heartbeat_is_older_than_the_ttl(
    transactional_db, fresh_mirror, make_mitra
):
    mitra = make_mitra()
    services.mitra_set_online(mitra=mitra, is_online=True, now=T0)
    mitra.refresh_from_db()

    assert selectors.mitra_presence(mitra=mitra, now=T0 + timedelta(seconds=29)).is_present is True
    lapsed = selectors.mitra_presence(mitra=mitra, now=T0 + timedelta(seconds=30))
    assert (lapsed.is_online, lapsed.is_present, lapsed.is_available) == (True, False, False)


def test_it_brings_presence_back_with_a_heartbeat_and_tells_the_hooks(
    transactional_db, fresh_mirror, make_mitra, available_calls
):
    mitra = make_mitra()
    services.mitra_set_online(mitra=mitra, is_online=True, now=T0)
    mitra.refresh_from_db()
    available_calls.clear()

    services.mitra_heartbeat(mitra=mitra, now=T0 + timedelta(seconds=10))  # still present: no hint
    assert available_calls == []
    services.mitra_heartbeat(mitra=mitra, now=T0 + timedelta(seconds=45))  # lapsed, now back

    assert available_calls == [mitra.id]
    assert _valkey_heartbeat(fresh_mirror, mitra) == (T0 + timedelta(seconds=45)).timestamp()
    mitra.refresh_from_db()
    assert mitra.last_heartbeat_at == T0  # the heartbeat itself does not write Postgres
    assert selectors.mitra_presence(mitra=mitra, now=T0 + timedelta(seconds=60)).is_present is True


def test_it_refuses_to_switch_a_deactivated_mitra_online(transactional_db, fresh_mirror, make_mitra):
    mitra = make_mitra()
    services.mitra_deactivate(mitra=mitra, actor=None)

    with pytest.raises(ServiceError) as refused:
        services.mitra_set_online(mitra=mitra, is_online=True)
    with pytest.raises(ServiceError):
        services.mitra_heartbeat(mitra=Mitra.objects.get(pk=mitra.pk))

    assert refused.value.code == "mitra_deactivated"
    mitra.refresh_from_db()
    assert (mitra.is_online, mitra.last_heartbeat_at) == (False, None)
    assert fresh_mirror.smembers(mirror.online_key()) == set()
    assert _valkey_heartbeat(fresh_mirror, mitra) is None


def test_it_sweeps_only_mitras_silent_past_ttl_plus_grace(transactional_db, fresh_mirror, make_mitra):
    silent, talking, offline = make_mitra(), make_mitra(), make_mitra()
    services.mitra_set_online(mitra=silent, is_online=True, now=T0)
    services.mitra_set_online(mitra=talking, is_online=True, now=T0)
    talking.refresh_from_db()
    services.mitra_heartbeat(mitra=talking, now=T0 + timedelta(seconds=50))

    assert services.mitras_sweep_stale(now=T0 + timedelta(seconds=60)) == []  # exactly ttl + grace
    assert services.mitras_sweep_stale(now=T0 + timedelta(seconds=61)) == [silent.id]
    assert services.mitras_sweep_stale(now=T0 + timedelta(seconds=61)) == []

    states = dict(Mitra.objects.values_list("id", "is_online"))
    assert states == {silent.id: False, talking.id: True, offline.id: False}
    assert fresh_mirror.smembers(mirror.online_key()) == {str(talking.id)}


def test_it_sweeps_each_stale_mitra_once_with_concurrent_sweepers(transactional_db, fresh_mirror, make_mitra):
    mitras = [make_mitra() for _ in range(12)]
    for mitra in mitras:
        services.mitra_set_online(mitra=mitra, is_online=True, now=T0)
    results, errors = [], []
    start = threading.Barrier(4)

    def sweep():
        try:
            start.wait()
            results.append(services.mitras_sweep_stale(now=T0 + timedelta(minutes=5)))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    swept = [mitra_id for result in results for mitra_id in result]
    assert sorted(swept) == sorted(m.id for m in mitras)
    assert Mitra.objects.filter(is_online=True).count() == 0


def test_it_flushes_valkey_heartbeats_into_postgres_forward_only(transactional_db, fresh_mirror, make_mitra):
    ahead, behind = make_mitra(), make_mitra()
    services.mitra_set_online(mitra=ahead, is_online=True, now=T0)
    services.mitra_set_online(mitra=behind, is_online=True, now=T0)
    ahead.refresh_from_db()
    services.mitra_heartbeat(mitra=ahead, now=T0 + timedelta(seconds=20))
    # Postgres is ahead of Valkey for this one (a heartbeat during an outage): kept.
    Mitra.objects.filter(pk=behind.pk).update(last_heartbeat_at=T0 + timedelta(seconds=40))

    assert services.mitras_flush_heartbeats() == 1
    assert services.mitras_flush_heartbeats() == 0

    beats = dict(Mitra.objects.values_list("id", "last_heartbeat_at"))
    assert beats == {ahead.id: T0 + timedelta(seconds=20), behind.id: T0 + timedelta(seconds=40)}


def test_it_takes_a_deactivated_mitra_out_at_once(
    transactional_db, fresh_mirror, make_mitra, api, deactivated_calls
):
    mitra = make_mitra()
    staff = mitra.user.__class__.objects.create_superuser("staf@halobestie.local", "rahasia-staf-123")
    tokens = tokens_for(mitra.user)
    client = auth_client(mitra.user)
    services.mitra_set_online(mitra=mitra, is_online=True)
    assert client.get("/api/v1/mitra/me").status_code == 200

    services.mitra_deactivate(mitra=mitra, actor=staff)
    services.mitra_deactivate(mitra=mitra, actor=staff)  # idempotent

    mitra.refresh_from_db()
    assert (mitra.is_online, mitra.online_since, mitra.deactivated_at is not None) == (False, None, True)
    refused = client.get("/api/v1/mitra/me")
    assert refused.status_code == 401
    refresh_jti = RefreshToken(tokens["refresh"], verify=False)["jti"]
    assert BlacklistedToken.objects.filter(token__jti=refresh_jti).exists()
    assert fresh_mirror.smembers(mirror.online_key()) == set()
    assert not fresh_mirror.exists(mirror.legacy_deactivated_key())  # nothing reads it: not kept
    assert api.get("/api/v1/availability").json()["online"] == 0
    assert api.get("/api/v1/mitras").json()["count"] == 0
    assert api.get(f"/api/v1/mitras/{mitra.id}").status_code == 404
    assert deactivated_calls == [mitra.id]
    audit = list(AuditEntry.objects.values_list("action", "actor_id", "object_id"))
    assert audit == [("mitra_deactivate", staff.id, str(mitra.id))]


def test_it_reactivates_a_mitra_offline_and_tells_the_hooks(
    transactional_db, fresh_mirror, make_mitra, api, available_calls
):
    mitra = make_mitra()
    services.mitra_deactivate(mitra=mitra, actor=None)

    services.mitra_reactivate(mitra=mitra, actor=None)

    mitra.refresh_from_db()
    assert (mitra.is_online, mitra.deactivated_at) == (False, None)
    assert available_calls == [mitra.id]
    assert not fresh_mirror.exists(mirror.legacy_deactivated_key())
    assert [m["id"] for m in api.get("/api/v1/mitras").json()["results"]] == [mitra.id]
    assert auth_client(mitra.user).get("/api/v1/mitra/me").status_code == 200


def test_it_updates_the_profile_and_frees_slots_on_a_raised_capacity(
    transactional_db, fresh_mirror, make_mitra, available_calls
):
    mitra = make_mitra(capacity=2)

    updated = services.mitra_update_profile(
        mitra=mitra, capacity=4, topics=[" Keluarga", "kerja", "keluarga"], display_name="Bestie Baru"
    )

    assert (updated.capacity, updated.topics, updated.display_name) == (
        4,
        ["keluarga", "kerja"],
        "Bestie Baru",
    )
    mitra.user.refresh_from_db()
    assert mitra.user.display_name == "Bestie Baru"
    assert available_calls == [mitra.id]
    services.mitra_update_profile(mitra=mitra, capacity=1)
    assert available_calls == [mitra.id]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", 0),
        ("capacity", 51),
        ("capacity", True),
        ("topics", "keluarga"),
        ("gender", "x"),
        ("avatar_url", "bukan url"),
        ("display_name", "  "),
    ],
)
def test_it_refuses_a_bad_profile_value_and_changes_nothing(make_mitra, field, value):
    mitra = make_mitra(capacity=3, topics=["kerja"])
    before = Mitra.objects.filter(pk=mitra.pk).values().get()

    with pytest.raises(ServiceError) as refused:
        services.mitra_update_profile(mitra=mitra, **{field: value})

    assert (refused.value.code, list(refused.value.fields)) == ("validation_error", [field])
    assert Mitra.objects.filter(pk=mitra.pk).values().get() == before


def test_it_writes_the_heartbeat_to_postgres_without_valkey(make_mitra, settings):
    settings.VALKEY_URL = ""
    mitra = make_mitra()
    services.mitra_set_online(mitra=mitra, is_online=True, now=T0)
    mitra.refresh_from_db()

    services.mitra_heartbeat(mitra=mitra, now=T0 + timedelta(seconds=25))

    mitra.refresh_from_db()
    assert mitra.last_heartbeat_at == T0 + timedelta(seconds=25)
    assert selectors.mitra_presence(mitra=mitra, now=T0 + timedelta(seconds=50)).is_present is True
    assert services.mitras_sweep_stale(now=timezone.now()) == [mitra.id]
