"""What the beacon says beyond the counts: availability per language and topic, and when the
next Bestie is scheduled to start when nobody is online."""

from datetime import UTC, datetime

from django.db import transaction

from mitras import mirror, schedule, selectors, services

# 2026-11-30 is a Monday; 12:00 in Asia/Jakarta.
MONDAY_NOON_JAKARTA = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def test_it_counts_available_besties_per_language_and_topic(
    transactional_db, fresh_mirror, make_mitra, loads, api
):
    ayu = make_mitra(languages=["id", "jv"], topics=["keluarga", "kerja"])
    budi = make_mitra(languages=["id"], topics=["keluarga"])
    full = make_mitra(languages=["en"], topics=["cinta"], capacity=1)
    make_mitra(languages=["su"], topics=["kuliah"])  # offline
    for mitra in (ayu, budi, full):
        services.mitra_set_online(mitra=mitra, is_online=True)
    with transaction.atomic():
        loads[full.id] = 1
        mirror.mirror_capacity_changed(full.id)

    body = api.get("/api/v1/availability").json()

    assert {k: body[k] for k in ("online", "available", "busy")} == {"online": 3, "available": 2, "busy": 1}
    assert body["available_by_language"] == {"id": 2, "jv": 1}
    assert body["available_by_topic"] == {"keluarga": 2, "kerja": 1}
    assert body["next_available_at"] is None  # someone is online


def test_it_says_when_the_next_bestie_starts_when_nobody_is_online(make_mitra):
    early, late, gone = make_mitra(), make_mitra(), make_mitra()
    # Monday 18:00 WIB (11:00 UTC) and Tuesday 08:00 WIB; the deactivated one would start sooner.
    schedule.working_hours_replace(mitra=early, intervals=[{"weekday": 1, "start": "18:00", "end": "22:00"}])
    schedule.working_hours_replace(mitra=late, intervals=[{"weekday": 2, "start": "08:00", "end": "12:00"}])
    schedule.working_hours_replace(mitra=gone, intervals=[{"weekday": 1, "start": "13:00", "end": "14:00"}])
    services.mitra_deactivate(mitra=gone, actor=None)

    beacon = selectors.availability_compute(now=MONDAY_NOON_JAKARTA)

    assert beacon["online"] == 0
    assert beacon["next_available_at"] == "2026-11-30T18:00:00+07:00"
    assert (beacon["available_by_language"], beacon["available_by_topic"]) == ({}, {})


def test_it_says_nothing_of_the_next_start_when_nobody_has_hours(make_mitra):
    make_mitra()
    assert selectors.availability_compute(now=MONDAY_NOON_JAKARTA)["next_available_at"] is None


def test_it_drops_the_cached_beacon_when_a_schedule_changes(transactional_db, fresh_mirror, make_mitra, api):
    mitra = make_mitra()
    assert api.get("/api/v1/availability").json()["next_available_at"] is None
    schedule.working_hours_replace(mitra=mitra, intervals=[{"weekday": 3, "start": "09:00", "end": "10:00"}])
    assert api.get("/api/v1/availability").json()["next_available_at"] is not None
