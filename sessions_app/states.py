"""The session state machine, in one place.

pending_payment → matching (paid) | cancelled (payment expired, client cancels)
               | scheduled (a booked session paid: sessions_app/bookings.py)
scheduled → offered (the start time: offered to the booked Bestie) | cancelled (refunded)
matching → offered (assigned) | unmatched (matching timeout; a refund is recorded) | cancelled
offered → active (accepted) | matching (declined, offer timeout, mitra gone) | cancelled
active → ended (time up, either side ends, staff, mitra lost)
"""

from halobestie.errors import Conflict
from sessions_app.models import Status

TRANSITIONS = {
    Status.PENDING_PAYMENT: {Status.MATCHING, Status.SCHEDULED, Status.CANCELLED},
    Status.SCHEDULED: {Status.OFFERED, Status.CANCELLED},
    Status.MATCHING: {Status.OFFERED, Status.UNMATCHED, Status.CANCELLED},
    Status.OFFERED: {Status.ACTIVE, Status.MATCHING, Status.CANCELLED},
    Status.ACTIVE: {Status.ENDED},
    Status.ENDED: set(),
    Status.CANCELLED: set(),
    Status.UNMATCHED: set(),
}


class IllegalTransition(Conflict):
    code = "illegal_transition"
    detail = "Sesi tidak dapat berpindah ke status itu dari status saat ini."


def can_transition(current, target) -> bool:
    return target in TRANSITIONS[Status(current)]


def check_transition(session, target):
    """Raise IllegalTransition (409) unless `session` may move to `target`.
    Precondition: the session row is locked (select_for_update) by the caller."""
    if not can_transition(session.status, target):
        raise IllegalTransition(
            f"Sesi berstatus '{session.status}' tidak dapat menjadi '{target}'.",
        )
