"""What every session state change does besides the row itself: its timeline event, the live
`session.updated` frame after commit, the mitra's load. Called by the lifecycle, matching and
timer services inside their transactions (the session row locked)."""

from django.db import transaction

from mitras.models import Mitra
from mitras.services import mitra_load_change
from sessions_app import events
from sessions_app.models import (
    ChatSession,
    SessionEvent,
)
from sessions_app.serializers import session_payload


def record(session, kind, *, actor=None, **data):
    SessionEvent.objects.create(session=session, kind=kind, actor=actor, data=data)


def record_many(kind, entries, *, actor=None):
    """`record` for many sessions in one INSERT: `entries` is [(session, data dict)]."""
    SessionEvent.objects.bulk_create(
        [SessionEvent(session=session, kind=kind, actor=actor, data=data) for session, data in entries]
    )


def participant_user_ids(session):
    user_ids = [session.client_id]
    if session.mitra_id:
        user_ids.append(Mitra.objects.filter(pk=session.mitra_id).values_list("user_id", flat=True).first())
    return user_ids


def notify_updated(session, *, extra_user_ids=()):
    """After commit: `session.updated` with the committed state to both participants."""
    session_id = session.pk
    user_ids = [*participant_user_ids(session), *extra_user_ids]

    def send():
        fresh = ChatSession.objects.select_related("client", "mitra", "rating").filter(pk=session_id).first()
        if fresh is not None:
            events.send_now(user_ids, {"type": "session.updated", "session": session_payload(fresh)})

    transaction.on_commit(send)


def load_changed(mitra_id, delta):
    """The session (locked) starts or stops occupying the mitra: its load column moves with F()
    in this transaction; the Valkey mirror is set after commit."""
    mitra_load_change(mitra_id=mitra_id, delta=delta)


def user_ids_of_mitras(mitra_ids):
    mitra_ids = [m for m in mitra_ids if m]
    return list(Mitra.objects.filter(pk__in=mitra_ids).values_list("user_id", flat=True)) if mitra_ids else []
