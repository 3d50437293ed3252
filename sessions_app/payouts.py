"""Payout periods: what each Bestie is owed for a month, the CSV finance pays from, and the record
that a period was paid (which locks it).

A period is an Asia/Jakarta calendar month, named by its first day. Every ledger row is booked
into the month it is made in, or, when that month is paid out already, into the first later
month that is not: a paid period never changes, so what was paid stays `SUM(entries)` of it.
Booking takes a shared advisory lock and recording a payout the exclusive one, so a row can
never slip into a period while that period is being paid.
"""

import csv
import io
from datetime import date

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.db.locks import PAYOUT_LOCK_KEY, advisory_xact_lock, advisory_xact_lock_shared
from halobestie.errors import Conflict, ServiceError
from sessions_app.models import EarningsEntry, EntryKind, PayoutBatch

CSV_COLUMNS = (
    "period", "mitra_id", "display_name", "phone", "sessions", "entries_idr", "reversals_idr", "total_idr",
)  # fmt: skip


def period_of(moment) -> date:
    return timezone.localtime(moment).date().replace(day=1)


def next_period(period: date) -> date:
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def parse_period(text) -> date:
    """'2026-11' → date(2026, 11, 1). Raises ServiceError `invalid_period` (400)."""
    try:
        year, month = (int(part) for part in str(text).split("-"))
        return date(year, month, 1)
    except (TypeError, ValueError):
        raise ServiceError(
            "Periode harus berformat YYYY-MM.", code="invalid_period", fields={"period": ["Format YYYY-MM."]}
        )


def period_for_booking(*, now) -> date:
    """The period a row booked now counts in. Precondition: inside the booking's transaction."""
    advisory_xact_lock_shared(PAYOUT_LOCK_KEY)
    period = period_of(now)
    paid = set(PayoutBatch.objects.filter(period__gte=period).values_list("period", flat=True))
    while period in paid:
        period = next_period(period)
    return period


def payout_lines(*, period: date) -> list[dict]:
    """One line per Bestie with rows in the period: earnings, reversals (and corrections), total."""
    earning = Q(kind=EntryKind.EARNING)
    rows = (
        EarningsEntry.objects.filter(period=period)
        .values("mitra_id", "mitra__display_name", "mitra__user__phone")
        .annotate(
            sessions=Count("session", distinct=True, filter=earning),
            entries_idr=Sum("amount_idr", filter=earning, default=0),
            reversals_idr=Sum("amount_idr", filter=~earning, default=0),
            total_idr=Sum("amount_idr"),
        )
        .order_by("mitra_id")
    )
    return [
        {
            "period": f"{period:%Y-%m}",
            "mitra_id": row["mitra_id"],
            "display_name": row["mitra__display_name"],
            "phone": row["mitra__user__phone"] or "",
            "sessions": row["sessions"],
            "entries_idr": row["entries_idr"],
            "reversals_idr": row["reversals_idr"],
            "total_idr": row["total_idr"],
        }
        for row in rows
    ]


def payout_csv(*, period: date) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(payout_lines(period=period))
    return out.getvalue()


def payout_batch_record(*, period: date, actor, reference: str, now=None, request=None) -> PayoutBatch:
    """Finance paid the period's lines (bank transfers with `reference`): recorded, audited, and
    the period locked. Raises ServiceError `validation_error` (no reference); Conflict
    `period_already_paid`, `period_not_started`, `nothing_to_pay`."""
    now = now or timezone.now()
    reference = (reference or "").strip()
    if not reference:
        raise ServiceError(
            "Referensi transfer wajib diisi.", code="validation_error", fields={"reference": ["Wajib diisi."]}
        )
    with transaction.atomic():
        advisory_xact_lock(PAYOUT_LOCK_KEY)
        if period > period_of(now):
            raise Conflict("Periode ini belum dimulai.", code="period_not_started")
        if PayoutBatch.objects.filter(period=period).exists():
            raise Conflict("Periode ini sudah dibayar.", code="period_already_paid")
        lines = payout_lines(period=period)
        if not lines:
            raise Conflict("Tidak ada pendapatan pada periode ini.", code="nothing_to_pay")
        batch = PayoutBatch.objects.create(
            period=period,
            entries_idr=sum(line["entries_idr"] for line in lines),
            reversals_idr=sum(line["reversals_idr"] for line in lines),
            total_idr=sum(line["total_idr"] for line in lines),
            mitra_count=len(lines),
            lines=lines,
            reference=reference[:100],
            paid_by=actor,
        )
        audit_record(
            actor=actor, action="payout_paid", obj=batch, request=request,
            after={"period": f"{period:%Y-%m}", "total_idr": batch.total_idr, "mitra_count": len(lines),
                   "reference": batch.reference},
        )  # fmt: skip
    return batch
