"""A Bestie's working hours: the weekly schedule, its validation, and what it says about time."""

from datetime import UTC, datetime

import pytest

from mitras import schedule
from mitras.models import WorkingHours
from mitras.schedule import WeeklyInterval
from tests.conftest import auth_client

MONDAY, TUESDAY, SUNDAY = 1, 2, 7
# 2026-11-30 is a Monday; Asia/Jakarta is UTC+7 all year.
MONDAY_NOON_JAKARTA = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def utc(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_it_lays_the_week_out_in_utc_and_merges_hours_past_midnight():
    weekly = [
        WeeklyInterval(MONDAY, 9 * 60, 12 * 60),
        WeeklyInterval(MONDAY, 22 * 60, 24 * 60),
        WeeklyInterval(TUESDAY, 0, 2 * 60),
    ]
    start = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # Monday 00:00 in Jakarta
    end = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)  # a week later

    assert schedule.working_intervals(weekly, start=start, end=end) == [
        (utc(30, 2), utc(30, 5)),  # Monday 09:00–12:00 WIB
        (utc(30, 15), utc(30, 19)),  # Monday 22:00 – Tuesday 02:00 WIB, one stretch
    ]


def test_it_clips_the_intervals_to_the_instants_asked_for():
    weekly = [WeeklyInterval(MONDAY, 9 * 60, 17 * 60)]
    assert schedule.working_intervals(weekly, start=MONDAY_NOON_JAKARTA, end=utc(30, 8)) == [
        (MONDAY_NOON_JAKARTA, utc(30, 8))
    ]
    assert schedule.working_intervals([], start=MONDAY_NOON_JAKARTA, end=utc(30, 23)) == []


def test_it_says_when_a_bestie_is_next_available_and_next_starts():
    weekly = [WeeklyInterval(MONDAY, 9 * 60, 17 * 60), WeeklyInterval(SUNDAY, 20 * 60, 22 * 60)]

    assert schedule.is_working_at(weekly, MONDAY_NOON_JAKARTA) is True
    assert schedule.next_available_at(weekly, now=MONDAY_NOON_JAKARTA) == MONDAY_NOON_JAKARTA
    # Sunday 6 December 20:00 WIB is 13:00 UTC: the next start strictly after Monday noon.
    assert schedule.next_start_after(weekly, now=MONDAY_NOON_JAKARTA) == datetime(
        2026, 12, 6, 13, 0, tzinfo=UTC
    )
    evening = utc(30, 11)  # Monday 18:00 WIB
    assert schedule.is_working_at(weekly, evening) is False
    assert schedule.next_available_at(weekly, now=evening) == datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
    assert schedule.next_start_after([], now=evening) is None
    assert schedule.next_available_at([], now=evening) is None


def test_it_lets_a_mitra_read_and_replace_its_schedule(make_mitra):
    mitra = make_mitra()
    client = auth_client(mitra.user)

    empty = client.get("/api/v1/mitra/working-hours")
    assert empty.status_code == 200
    assert empty.json() == {
        "timezone": "Asia/Jakarta",
        "intervals": [],
        "is_within_working_hours": False,
        "next_start_at": None,
    }

    body = {
        "intervals": [
            {"weekday": 3, "start": "19:00", "end": "24:00"},
            {"weekday": 1, "start": "09:00", "end": "12:00"},
            {"weekday": 1, "start": "12:00", "end": "15:30"},
        ]
    }
    saved = client.put("/api/v1/mitra/working-hours", body, format="json")

    assert saved.status_code == 200
    assert saved.json()["intervals"] == [
        {"weekday": 1, "start": "09:00", "end": "12:00"},
        {"weekday": 1, "start": "12:00", "end": "15:30"},
        {"weekday": 3, "start": "19:00", "end": "24:00"},
    ]
    assert saved.json()["next_start_at"] is not None
    assert list(
        WorkingHours.objects.filter(mitra=mitra).values_list("weekday", "start_minute", "end_minute")
    ) == [(1, 540, 720), (1, 720, 930), (3, 1140, 1440)]
    assert client.get("/api/v1/mitra/working-hours").json() == saved.json()

    cleared = client.put("/api/v1/mitra/working-hours", {"intervals": []}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["intervals"] == []
    assert not WorkingHours.objects.filter(mitra=mitra).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"intervals": [{"weekday": 1, "start": "10:00", "end": "09:00"}]}, "intervals.0.end"),
        ({"intervals": [{"weekday": 1, "start": "10:00", "end": "10:00"}]}, "intervals.0.end"),
        ({"intervals": [{"weekday": 0, "start": "09:00", "end": "10:00"}]}, "intervals.0.weekday"),
        ({"intervals": [{"weekday": 8, "start": "09:00", "end": "10:00"}]}, "intervals.0.weekday"),
        ({"intervals": [{"weekday": "1", "start": "09:00", "end": "10:00"}]}, "intervals.0.weekday"),
        ({"intervals": [{"weekday": True, "start": "09:00", "end": "10:00"}]}, "intervals.0.weekday"),
        ({"intervals": [{"weekday": 1, "start": "24:00", "end": "24:00"}]}, "intervals.0.start"),
        ({"intervals": [{"weekday": 1, "start": "9:00", "end": "10:00"}]}, "intervals.0.start"),
        ({"intervals": [{"weekday": 1, "start": "09:00", "end": "25:00"}]}, "intervals.0.end"),
        ({"intervals": [{"weekday": 1, "start": 540, "end": 600}]}, "intervals.0.start"),
        ({"intervals": [{"weekday": 1, "start": None, "end": "10:00"}]}, "intervals.0.start"),
        ({"intervals": [{"weekday": 1, "start": "09:00", "end": "10:00", "x": 1}]}, "intervals.0"),
        ({"intervals": ["senin 9-10"]}, "intervals.0"),
        ({"intervals": "senin"}, "intervals"),
        ({"intervals": {"weekday": 1}}, "intervals"),
        ({}, "intervals"),
        ([1, 2], "intervals"),
        ({"intervals": [{"weekday": 1, "start": "09:00", "end": "10:00"}] * 51}, "intervals"),
        (
            {
                "intervals": [
                    {"weekday": 2, "start": "09:00", "end": "12:00"},
                    {"weekday": 2, "start": "11:59", "end": "13:00"},
                ]
            },
            "intervals.1",
        ),
        (
            {
                "intervals": [
                    {"weekday": 5, "start": "09:00", "end": "12:00"},
                    {"weekday": 5, "start": "09:00", "end": "12:00"},
                ]
            },
            "intervals.1",
        ),
    ],
)
def test_it_refuses_a_bad_schedule_and_keeps_the_old_one(make_mitra, body, field):
    mitra = make_mitra()
    client = auth_client(mitra.user)
    schedule.working_hours_replace(mitra=mitra, intervals=[{"weekday": 1, "start": "08:00", "end": "09:00"}])

    response = client.put("/api/v1/mitra/working-hours", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_working_hours"
    assert list(error["fields"]) == [field]
    assert list(
        WorkingHours.objects.filter(mitra=mitra).values_list("weekday", "start_minute", "end_minute")
    ) == [(1, 480, 540)]


def test_it_refuses_the_schedule_endpoints_to_clients_and_strangers(make_client_user, api):
    assert api.get("/api/v1/mitra/working-hours").status_code == 401
    client = auth_client(make_client_user())
    assert client.get("/api/v1/mitra/working-hours").status_code == 403
    assert client.put("/api/v1/mitra/working-hours", {"intervals": []}, format="json").status_code == 403


def test_it_shows_the_schedule_on_the_public_profile(make_mitra, api):
    mitra = make_mitra()
    other = make_mitra()
    schedule.working_hours_replace(mitra=mitra, intervals=[{"weekday": 6, "start": "10:00", "end": "14:00"}])
    schedule.working_hours_replace(mitra=other, intervals=[{"weekday": 7, "start": "08:00", "end": "09:00"}])

    detail = api.get(f"/api/v1/mitras/{mitra.id}").json()
    assert detail["working_hours"] == [{"weekday": 6, "start": "10:00", "end": "14:00"}]
    listed = {m["id"]: m["working_hours"] for m in api.get("/api/v1/mitras").json()["results"]}
    assert listed == {
        mitra.id: [{"weekday": 6, "start": "10:00", "end": "14:00"}],
        other.id: [{"weekday": 7, "start": "08:00", "end": "09:00"}],
    }
