"""A Bestie's working hours: a weekly schedule in Asia/Jakarta, and when that puts them at work.

The schedule is a list of weekly intervals (`WeeklyInterval`: ISO weekday 1 Monday … 7 Sunday,
start and end as minutes from local midnight, end up to 24:00), stored as `WorkingHours` rows and
replaced as a whole (`working_hours_replace`). Times are Asia/Jakarta wall-clock (no daylight
saving, UTC+7) and every instant this module returns is an aware UTC datetime.

What the hours mean (the assignment rule, sessions_app/preferences.py): being online is the
Bestie's explicit consent, so an online Bestie outside their hours still gets offers; but among
the free Besties who fit a session equally, those inside their working hours rank first. The
hours also tell clients when a Bestie is next around (`next_start_after`, the beacon's
`next_available_at`) and give booked sessions their slots (`working_intervals`).
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Exists, OuterRef

from halobestie.errors import ServiceError
from mitras import mirror
from mitras.models import Mitra, WorkingHours

JAKARTA = ZoneInfo("Asia/Jakarta")
TIMEZONE_NAME = "Asia/Jakarta"
MINUTES_PER_DAY = 24 * 60
MAX_INTERVALS = 50
WEEKDAY_NAMES = {1: "Senin", 2: "Selasa", 3: "Rabu", 4: "Kamis", 5: "Jumat", 6: "Sabtu", 7: "Minggu"}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, order=True)
class WeeklyInterval:
    weekday: int  # ISO 8601: 1 Monday … 7 Sunday
    start_minute: int  # minutes from local midnight, 0 … 1439
    end_minute: int  # exclusive, start_minute + 1 … 1440 (24:00)

    def as_json(self) -> dict:
        return {"weekday": self.weekday, "start": _clock(self.start_minute), "end": _clock(self.end_minute)}

    def __str__(self):
        return f"{WEEKDAY_NAMES[self.weekday]} {_clock(self.start_minute)}–{_clock(self.end_minute)}"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# Validation ---------------------------------------------------------------------------------------


def _invalid(field, message):
    return ServiceError(message, code="invalid_working_hours", fields={field: [message]})


def _minute(value, *, field, allow_midnight_end):
    if isinstance(value, str) and allow_midnight_end and value == "24:00":
        return MINUTES_PER_DAY
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        hint = "00:00–24:00" if allow_midnight_end else "00:00–23:59"
        raise _invalid(field, f"Jam harus berformat HH:MM ({hint}).")
    return int(match.group(1)) * 60 + int(match.group(2))


def schedule_clean(raw) -> list:
    """Raw JSON from a request (a list of {weekday, start "HH:MM", end "HH:MM"}) → sorted
    WeeklyIntervals. Raises ServiceError `invalid_working_hours` (400) naming the field
    (`intervals.<index>.<key>`) for a wrong type, an unknown weekday, a bad clock, an end not
    after its start, an overlap on the same day, or more than MAX_INTERVALS intervals."""
    if not isinstance(raw, list):
        raise _invalid("intervals", "Jam kerja harus berupa daftar interval.")
    if len(raw) > MAX_INTERVALS:
        raise _invalid("intervals", f"Paling banyak {MAX_INTERVALS} interval.")
    cleaned = []
    for index, item in enumerate(raw):
        prefix = f"intervals.{index}"
        if not isinstance(item, dict):
            raise _invalid(prefix, "Setiap interval harus objek {weekday, start, end}.")
        unknown = set(item) - {"weekday", "start", "end"}
        if unknown:
            raise _invalid(prefix, f"Kunci tidak dikenal: {', '.join(sorted(map(str, unknown)))}.")
        weekday = item.get("weekday")
        if isinstance(weekday, bool) or not isinstance(weekday, int) or not 1 <= weekday <= 7:
            raise _invalid(f"{prefix}.weekday", "Hari harus 1 (Senin) sampai 7 (Minggu).")
        start = _minute(item.get("start"), field=f"{prefix}.start", allow_midnight_end=False)
        end = _minute(item.get("end"), field=f"{prefix}.end", allow_midnight_end=True)
        if end <= start:
            message = "Jam selesai harus setelah jam mulai (lewat tengah malam: pecah jadi dua hari)."
            raise _invalid(f"{prefix}.end", message)
        cleaned.append((WeeklyInterval(weekday, start, end), index))
    cleaned.sort()
    for (previous, _), (current, index) in zip(cleaned, cleaned[1:], strict=False):
        if previous.weekday == current.weekday and current.start_minute < previous.end_minute:
            raise _invalid(f"intervals.{index}", f"Bertumpang tindih dengan {previous}.")
    return [interval for interval, _ in cleaned]


# Reads ------------------------------------------------------------------------------------------


def schedule_of(mitra) -> list:
    """The Bestie's weekly intervals, sorted (uses `prefetch_related("working_hours")` if done)."""
    return sorted(WeeklyInterval(r.weekday, r.start_minute, r.end_minute) for r in mitra.working_hours.all())


def schedules_of(mitra_ids) -> dict:
    """{mitra_id: [WeeklyInterval, …]} in one query (Besties without hours are absent)."""
    return _schedules(WorkingHours.objects.filter(mitra_id__in=list(mitra_ids)))


def _schedules(rows) -> dict:
    schedules = defaultdict(list)
    for mitra_id, weekday, start, end in rows.values_list(
        "mitra_id", "weekday", "start_minute", "end_minute"
    ):
        schedules[mitra_id].append(WeeklyInterval(weekday, start, end))
    return {mitra_id: sorted(intervals) for mitra_id, intervals in schedules.items()}


def working_intervals(weekly, *, start: datetime, end: datetime) -> list:
    """The weekly schedule laid out between two instants: [(start, end), …] in UTC, sorted, touching
    intervals merged (Monday 22:00–24:00 + Tuesday 00:00–02:00 is one), clipped to [start, end)."""
    if not weekly or end <= start:
        return []
    by_weekday = defaultdict(list)
    for interval in weekly:
        by_weekday[interval.weekday].append(interval)
    laid_out = []
    day = start.astimezone(JAKARTA).date() - timedelta(days=1)
    last_day = end.astimezone(JAKARTA).date()
    while day <= last_day:
        midnight = datetime.combine(day, time.min, tzinfo=JAKARTA)
        for interval in by_weekday.get(day.isoweekday(), ()):
            laid_out.append(
                (
                    (midnight + timedelta(minutes=interval.start_minute)).astimezone(UTC),
                    (midnight + timedelta(minutes=interval.end_minute)).astimezone(UTC),
                )
            )
        day += timedelta(days=1)
    laid_out.sort()
    merged = []
    for interval_start, interval_end in laid_out:
        if merged and interval_start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], interval_end))
        else:
            merged.append((interval_start, interval_end))
    return [(max(s, start), min(e, end)) for s, e in merged if e > start and s < end]


def working_intervals_of(*, mitra, start: datetime, end: datetime) -> list:
    """A Bestie's working intervals (UTC) between two instants."""
    return working_intervals(schedule_of(mitra), start=start, end=end)


def is_working_at(weekly, at: datetime) -> bool:
    local = at.astimezone(JAKARTA)
    minute = local.hour * 60 + local.minute
    return any(i.weekday == local.isoweekday() and i.start_minute <= minute < i.end_minute for i in weekly)


def next_available_at(weekly, *, now: datetime) -> datetime | None:
    """The first instant at or after `now` inside the schedule (`now` itself when inside), or None
    for an empty schedule."""
    intervals = working_intervals(weekly, start=now, end=now + timedelta(days=8))
    return intervals[0][0] if intervals else None


def next_start_after(weekly, *, now: datetime) -> datetime | None:
    """When the Bestie next starts work after `now` (the start of a working stretch strictly after
    `now`; a stretch running at `now` does not count), or None for an empty schedule (and for a
    round-the-clock one, which never starts again)."""
    for interval_start, _ in working_intervals(
        weekly, start=now - timedelta(days=1), end=now + timedelta(days=9)
    ):
        if interval_start > now:
            return interval_start
    return None


def next_scheduled_start(*, now: datetime) -> datetime | None:
    """The earliest `next_start_after` of any active (not deactivated) Bestie, or None when no
    active Bestie has working hours (the beacon's `next_available_at`)."""
    active = _schedules(WorkingHours.objects.filter(mitra__deactivated_at__isnull=True))
    starts = [next_start_after(weekly, now=now) for weekly in active.values()]
    starts = [start for start in starts if start is not None]
    return min(starts) if starts else None


def with_working_now(queryset, *, now: datetime):
    """Annotate Mitra rows with `is_within_working_hours` at `now` (one EXISTS in the same query;
    usable under select_for_update)."""
    local = now.astimezone(JAKARTA)
    minute = local.hour * 60 + local.minute
    inside = WorkingHours.objects.filter(
        mitra=OuterRef("pk"), weekday=local.isoweekday(), start_minute__lte=minute, end_minute__gt=minute
    )
    return queryset.annotate(is_within_working_hours=Exists(inside))


def schedule_out(weekly, *, now: datetime) -> dict:
    """What the apps see of a schedule."""
    return {
        "timezone": TIMEZONE_NAME,
        "intervals": [interval.as_json() for interval in weekly],
        "is_within_working_hours": is_working_at(weekly, now),
        "next_start_at": next_start_after(weekly, now=now),
    }


# Writes -------------------------------------------------------------------------------------------


def working_hours_replace(*, mitra, intervals) -> list:
    """Replace the Bestie's whole weekly schedule with `intervals` (raw JSON, validated by
    `schedule_clean`; an empty list clears it). Under the mitra's row lock, so two saves never
    interleave; the beacon snapshot is dropped after commit. Returns the sorted intervals."""
    weekly = schedule_clean(intervals)
    with transaction.atomic():
        Mitra.objects.select_for_update().filter(pk=mitra.pk).values_list("pk").first()
        WorkingHours.objects.filter(mitra_id=mitra.pk).delete()
        WorkingHours.objects.bulk_create(
            [
                WorkingHours(
                    mitra_id=mitra.pk, weekday=i.weekday, start_minute=i.start_minute, end_minute=i.end_minute
                )
                for i in weekly
            ]
        )
        transaction.on_commit(mirror.invalidate_snapshot)  # the beacon's next_available_at
    return weekly
