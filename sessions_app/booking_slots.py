"""Bookable start times of a Bestie: their working hours (mitras/schedule.py) less the times
other bookings hold, on a grid, inside the booking window of the runtime config.

Pure reads; `sessions_app/bookings.py` calls `is_bookable` again under the Bestie's row lock
before it holds a time, so two clients can never hold the same time.

Rules (runtime config, docs/payments.md):
- a start lies on the grid of `booking_slot_minutes` counted from midnight Asia/Jakarta;
- the whole package length lies inside one working stretch of the Bestie;
- the start is at least `booking_lead_seconds` from now and at most `booking_horizon_days` ahead;
- `booking_buffer_minutes` stay free between two bookings of the same Bestie;
- a booking holds its time while it is unpaid and its hold has not expired, once paid
  (scheduled) and while it runs (offered, active).
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q

from sessions_app.models import Booking, Status

JAKARTA = ZoneInfo("Asia/Jakarta")
MAX_RANGE = timedelta(days=31)


def holding_bookings(*, now):
    """Bookings that hold their time at `now` (see the module docstring)."""
    return Booking.objects.filter(
        Q(session__status=Status.PENDING_PAYMENT, hold_expires_at__gt=now)
        | Q(
            session__status__in=[Status.SCHEDULED, Status.OFFERED, Status.ACTIVE],
            mitra_absent_at__isnull=True,
        )
    )


def _grid_ceil(instant: datetime, step_minutes: int) -> datetime:
    """The first grid point at or after `instant`; the grid starts at midnight Asia/Jakarta."""
    local = instant.astimezone(JAKARTA)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(minutes=step_minutes)
    steps = -(-(local - midnight) // step)  # ceiling division of timedeltas
    return midnight + steps * step


def bookable_starts(
    *,
    mitra,
    duration_seconds: int,
    start: datetime,
    end: datetime,
    now: datetime,
    config,
    exclude_booking_id=None,
) -> list:
    """UTC starts in [start, end) at which `mitra` can be booked for `duration_seconds`."""
    from mitras.schedule import working_intervals_of  # issue 19's working hours

    earliest = max(start, now + timedelta(seconds=config.booking_lead_seconds))
    latest = min(end, now + timedelta(days=config.booking_horizon_days))
    if latest <= earliest:
        return []
    length = timedelta(seconds=duration_seconds)
    buffer = timedelta(minutes=config.booking_buffer_minutes)
    step = timedelta(minutes=config.booking_slot_minutes)
    stretches = working_intervals_of(mitra=mitra, start=earliest, end=latest + length)
    taken_query = holding_bookings(now=now).filter(
        mitra=mitra, starts_at__lt=latest + length + buffer, ends_at__gt=earliest - buffer
    )
    if exclude_booking_id is not None:
        taken_query = taken_query.exclude(pk=exclude_booking_id)
    taken = [(s - buffer, e + buffer) for s, e in taken_query.values_list("starts_at", "ends_at")]
    starts = []
    for stretch_start, stretch_end in stretches:
        at = _grid_ceil(max(stretch_start, earliest), config.booking_slot_minutes)
        while at + length <= stretch_end and at < latest:
            if not any(at < t_end and at + length > t_start for t_start, t_end in taken):
                starts.append(at.astimezone(stretch_start.tzinfo))
            at += step
    return starts


def is_bookable(
    *, mitra, duration_seconds: int, starts_at: datetime, now: datetime, config, exclude_booking_id=None
) -> bool:
    starts = bookable_starts(
        mitra=mitra,
        duration_seconds=duration_seconds,
        start=starts_at,
        end=starts_at + timedelta(seconds=1),
        now=now,
        config=config,
        exclude_booking_id=exclude_booking_id,
    )
    return any(s == starts_at for s in starts)


def overlaps_other_booking(booking, *, now) -> bool:
    """Whether another booking holding its time now overlaps `booking` (buffer included)."""
    from halobestie.runtime.selectors import get_config

    buffer = timedelta(minutes=get_config().booking_buffer_minutes)
    return (
        holding_bookings(now=now)
        .filter(
            mitra_id=booking.mitra_id,
            starts_at__lt=booking.ends_at + buffer,
            ends_at__gt=booking.starts_at - buffer,
        )
        .exclude(pk=booking.pk)
        .exists()
    )


def next_booking_starts(*, mitra_ids, now) -> dict:
    """mitra id → the earliest start, less the buffer, of a booking still ahead of that Bestie
    (held or paid, not yet running). The dispatcher offers an on-demand session to a Bestie only
    if it ends before then (sessions_app/matching.py)."""
    from halobestie.runtime.selectors import get_config

    buffer = timedelta(minutes=get_config().booking_buffer_minutes)
    rows = (
        holding_bookings(now=now)
        .filter(
            mitra_id__in=mitra_ids,
            session__status__in=[Status.PENDING_PAYMENT, Status.SCHEDULED],
            ends_at__gt=now,
        )
        .values_list("mitra_id", "starts_at")
    )
    earliest = {}
    for mitra_id, starts_at in rows:
        if mitra_id not in earliest or starts_at < earliest[mitra_id]:
            earliest[mitra_id] = starts_at
    return {mitra_id: starts_at - buffer for mitra_id, starts_at in earliest.items()}
