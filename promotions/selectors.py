"""Reads on promotions: what finance sees per campaign."""

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from promotions.models import Redemption, RedemptionStatus
from sessions_app.models import ChatSession


def _per_campaign(aggregate, *, redemptions=None):
    redemptions = redemptions if redemptions is not None else Redemption.objects.all()
    query = (
        redemptions.filter(campaign=OuterRef("pk"), status=RedemptionStatus.CONSUMED)
        .order_by()
        .values("campaign")
        .annotate(value=aggregate)
        .values("value")
    )
    return Coalesce(Subquery(query, output_field=IntegerField()), Value(0))


def campaigns_with_stats(queryset):
    """Annotate campaigns with what their consumed redemptions gave, in one query for the page:
    `redemption_count`, `discount_given_idr`, `session_count`, `client_count` and
    `repeat_client_count` (clients who had another session accepted after their promo one)."""
    later = ChatSession.objects.filter(
        client=OuterRef("client"), accepted_at__isnull=False, created_at__gt=OuterRef("reserved_at")
    ).exclude(pk=OuterRef("session"))
    came_back = Redemption.objects.annotate(came_back=Exists(later)).filter(came_back=True)
    return queryset.annotate(
        redemption_count=_per_campaign(Count("id")),
        discount_given_idr=_per_campaign(Sum("discount_idr")),
        session_count=_per_campaign(Count("session", distinct=True)),
        client_count=_per_campaign(Count("client", distinct=True)),
        repeat_client_count=_per_campaign(Count("client", distinct=True), redemptions=came_back),
        reserved_count=Count("redemptions", filter=Q(redemptions__status=RedemptionStatus.RESERVED)),
    )
