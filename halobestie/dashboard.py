"""Numbers of the control center's live dashboard, from Postgres (the truth)."""

from django.db.models import Count, Sum
from django.utils import timezone

from mitras.load import mitra_loads
from mitras.models import Mitra
from payments.models import Payment, Refund
from sessions_app.models import ChatSession, Status


def dashboard_numbers() -> dict:
    online = list(
        Mitra.objects.filter(is_online=True, deactivated_at__isnull=True).values_list("id", "capacity")
    )
    loads = mitra_loads([mitra_id for mitra_id, _ in online])
    available = sum(1 for mitra_id, capacity in online if loads.get(mitra_id, 0) < capacity)
    by_status = dict(
        ChatSession.objects.filter(status__in=[Status.MATCHING, Status.OFFERED, Status.ACTIVE])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    day_start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    numbers = {
        "mitras_online": len(online),
        "mitras_available": available,
        "mitras_busy": len(online) - available,
        "mitras_deactivated": Mitra.objects.filter(deactivated_at__isnull=False).count(),
        "queue_waiting": by_status.get(Status.MATCHING, 0),
        "sessions_offered": by_status.get(Status.OFFERED, 0),
        "sessions_active": by_status.get(Status.ACTIVE, 0),
        "sessions_flagged_open": ChatSession.objects.filter(
            is_flagged=True, status__in=[Status.ACTIVE, Status.OFFERED, Status.MATCHING]
        ).count(),
        "updated_at": timezone.now().isoformat(),
    }
    paid_today = Payment.objects.filter(paid_at__gte=day_start, status="paid")
    numbers["payments_today"] = paid_today.count()
    numbers["payments_today_idr"] = paid_today.aggregate(total=Sum("amount_idr"))["total"] or 0
    numbers["refunds_today"] = Refund.objects.filter(created_at__gte=day_start).count()
    return numbers
