"""Reads on payments."""

from payments.models import Payment


def payment_by_external_id(*, external_id: str) -> Payment | None:
    return Payment.objects.select_related("session").filter(external_id=external_id).first()


def payments_for_session(*, session):
    return Payment.objects.filter(session=session).order_by("created_at")
