"""The control center's live dashboard: people, not counts. Read from Postgres (the truth) and the
mirror through the same selectors the apps use.

- Online: `mitras.selectors.mitras_present`, the beacon's definition (toggled online, not
  deactivated, heartbeat fresh): name, load/capacity, heartbeat age, resting until (cool-down or
  break: present but no offers).
- Waiting: sessions in matching, in queue order (first in, first out by `matching_started_at`),
  how long they have waited and what they asked for.
- Ending soon: active sessions whose end is within ENDING_SOON_WINDOW.
- Crisis: sessions waiting for a staff acknowledgement (sessions_app/handoff.py).
- Payments needing a human (flagged, failed) and refunds to review (failed, waiting for a manual
  settlement, sessions in the refund review queue).

Each list is shown only to staff allowed to open what its rows link to; every row carries the
admin URL of its page. A fixed number of queries whatever the number of rows.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from mitras.models import Gender, Mitra
from mitras.selectors import mitras_present
from payments.models import Payment, PaymentStatus, Refund, RefundStatus
from sessions_app.handoff import attention_list
from sessions_app.models import ChatSession, Status

ENDING_SOON_WINDOW = timedelta(minutes=10)
LIST_LIMIT = 50
OPEN_FLAG_STATUSES = (Status.ACTIVE, Status.OFFERED, Status.MATCHING)


def admin_url(name, args):
    """Control-center URLs: the admin lives in the internal URLconf, whichever listener asks."""
    return reverse(name, args=args, urlconf=settings.INTERNAL_URLCONF)


def _seconds(since, now) -> int | None:
    return None if since is None else max(0, int((now - since).total_seconds()))


def _rupiah(amount) -> str:
    return "Rp" + f"{int(amount or 0):,}".replace(",", ".")


def _person(user) -> str:
    if user is None:
        return "–"
    return user.display_name or user.phone or user.email or f"#{user.pk}"


def _wishes(session) -> str:
    parts = []
    if session.preferred_topics:
        parts.append("topik: " + ", ".join(session.preferred_topics))
    if session.preferred_gender:
        parts.append(
            "gender: " + str(dict(Gender.choices).get(session.preferred_gender, session.preferred_gender))
        )
    if session.preferred_language:
        parts.append("bahasa: " + session.preferred_language)
    if session.requested_mitra_id:
        parts.append("minta Bestie: " + session.requested_mitra.display_name)
    return " · ".join(parts) or "–"


def _session_url(session_id) -> str:
    return admin_url("admin:sessions_app_chatsession_change", [session_id])


def mitras_online(*, now) -> list:
    rows = [
        {
            "mitra_id": mitra.id,
            "name": mitra.display_name,
            "load": presence.load,
            "capacity": mitra.capacity,
            "is_available": presence.is_available,
            "heartbeat_age_seconds": _seconds(presence.last_heartbeat_at, now),
            # Resting (mitras/rest.py: crisis cool-down or a break): present, no offers until then.
            "rest_until": timezone.localtime(mitra.rest_until).strftime("%H:%M:%S")
            if mitra.rest_until and mitra.rest_until > now
            else None,
            "url": admin_url("admin:mitras_mitra_change", [mitra.id]),
        }
        for mitra, presence in mitras_present(now=now)
    ]
    return sorted(rows, key=lambda row: (row["load"] / row["capacity"], row["name"]))[:LIST_LIMIT]


def sessions_waiting(*, now) -> list:
    sessions = (
        ChatSession.objects.filter(status=Status.MATCHING)
        .select_related("client", "requested_mitra")
        .order_by("matching_started_at", "created_at")[:LIST_LIMIT]
    )
    return [
        {
            "position": position,
            "session_id": str(session.id),
            "short_id": str(session.id)[:8],
            "client": _person(session.client),
            "package": session.package_code,
            "waited_seconds": _seconds(session.matching_started_at or session.paid_at, now),
            "wishes": _wishes(session),
            "url": _session_url(session.id),
        }
        for position, session in enumerate(sessions, start=1)
    ]


def sessions_ending_soon(*, now) -> list:
    sessions = (
        ChatSession.objects.filter(status=Status.ACTIVE, ends_at__lte=now + ENDING_SOON_WINDOW)
        .select_related("client", "mitra")
        .order_by("ends_at")[:LIST_LIMIT]
    )
    return [
        {
            "session_id": str(session.id),
            "short_id": str(session.id)[:8],
            "client": _person(session.client),
            "mitra": session.mitra.display_name if session.mitra else "–",
            "seconds_left": max(0, int((session.ends_at - now).total_seconds())),
            "url": _session_url(session.id),
        }
        for session in sessions
    ]


def sessions_in_crisis(*, now) -> list:
    waiting = attention_list(limit=LIST_LIMIT)
    sessions = ChatSession.objects.select_related("client", "mitra").in_bulk(
        [uuid.UUID(item["session_id"]) for item in waiting]
    )
    rows = []
    for item in waiting:
        session = sessions.get(uuid.UUID(item["session_id"]))
        rows.append(
            {
                "session_id": item["session_id"],
                "short_id": item["short_id"],
                "client": _person(session.client) if session else "–",
                "mitra": session.mitra.display_name if session and session.mitra else "–",
                "source": "Bestie" if item["source"] == "mitra" else "klien",
                "waiting_seconds": _seconds(session.flagged_at if session else None, now),
                "url": admin_url("admin:sessions_app_chatsession_handoff", [item["session_id"]]),
            }
        )
    return rows


def payments_needing_staff() -> list:
    payments = (
        Payment.objects.filter(Q(flagged_for_staff=True) | Q(status=PaymentStatus.FAILED))
        .select_related("session__client")
        .order_by("-updated_at")[:LIST_LIMIT]
    )
    return [
        {
            "payment_id": str(payment.id),
            "external_id": payment.external_id,
            "client": _person(payment.session.client),
            "amount": _rupiah(payment.amount_idr),
            "status": payment.get_status_display(),
            "problem": payment.flag_reason
            or ("Ditandai untuk staf" if payment.flagged_for_staff else "Gagal"),
            "url": admin_url("admin:payments_payment_change", [payment.id]),
        }
        for payment in payments
    ]


def refunds_to_review() -> list:
    refunds = (
        Refund.objects.filter(
            Q(status=RefundStatus.FAILED) | Q(status=RefundStatus.PENDING, is_gateway_refund=False)
        )
        .select_related("session__client")
        .order_by("created_at")[:LIST_LIMIT]
    )
    rows = [
        {
            "kind": "refund",
            "reference": str(refund.id)[:8],
            "client": _person(refund.session.client),
            "amount": _rupiah(refund.amount_idr),
            "status": refund.get_status_display(),
            "problem": refund.failure_code
            or ("Gagal" if refund.status == RefundStatus.FAILED else "Menunggu penyelesaian manual"),
            "url": admin_url("admin:payments_refund_change", [refund.id]),
        }
        for refund in refunds
    ]
    sessions = (
        ChatSession.objects.filter(needs_refund_review=True)
        .select_related("client")
        .order_by("ended_at")[:LIST_LIMIT]
    )
    rows += [
        {
            "kind": "session",
            "reference": str(session.id)[:8],
            "client": _person(session.client),
            "amount": _rupiah(session.price_idr + session.extensions_total_idr - session.discount_idr),
            "status": session.get_status_display(),
            "problem": "Sesi perlu ditinjau untuk refund (" + (session.get_end_reason_display() or "–") + ")",
            "url": admin_url("admin:sessions_app_chatsession_refund", [session.id]),
        }
        for session in sessions
    ]
    return rows


def dashboard_numbers(*, now=None) -> dict:
    now = now or timezone.now()
    present = [presence for _, presence in mitras_present(now=now)]
    available = sum(1 for presence in present if presence.is_available)
    by_status = dict(
        ChatSession.objects.filter(status__in=[Status.MATCHING, Status.OFFERED, Status.ACTIVE])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    paid_today = Payment.objects.filter(paid_at__gte=day_start, status=PaymentStatus.PAID)
    return {
        "mitras_online": len(present),
        "mitras_available": available,
        "mitras_busy": len(present) - available,
        "mitras_deactivated": Mitra.objects.filter(deactivated_at__isnull=False).count(),
        "queue_waiting": by_status.get(Status.MATCHING, 0),
        "sessions_offered": by_status.get(Status.OFFERED, 0),
        "sessions_active": by_status.get(Status.ACTIVE, 0),
        "sessions_flagged_open": ChatSession.objects.filter(
            is_flagged=True, status__in=OPEN_FLAG_STATUSES
        ).count(),
        "payments_today": paid_today.count(),
        "payments_today_idr": paid_today.aggregate(total=Sum("amount_idr"))["total"] or 0,
        "refunds_today": Refund.objects.filter(created_at__gte=day_start).count(),
        "updated_at": now.isoformat(),
    }


# Who sees which list: the permission their rows' pages need.
LISTS = (
    ("online", "mitras.view_mitra", mitras_online),
    ("waiting", "sessions_app.view_chatsession", sessions_waiting),
    ("ending_soon", "sessions_app.view_chatsession", sessions_ending_soon),
    ("crisis", "sessions_app.handle_crisis", sessions_in_crisis),
    ("payments", "payments.view_payment", lambda *, now: payments_needing_staff()),
    ("refunds", "payments.view_refund", lambda *, now: refunds_to_review()),
)


def dashboard_snapshot(*, user, now=None) -> dict:
    """The numbers, and each list of people the staff member may open (None where not)."""
    now = now or timezone.now()
    return {
        **dashboard_numbers(now=now),
        "lists": {
            name: (build(now=now) if user.has_perm(permission) else None) for name, permission, build in LISTS
        },
    }
