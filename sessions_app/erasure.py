"""Erasure that erases: a client's transcripts, ratings' comments and reports' texts.

- `transcript_erase` (`DELETE /api/v1/sessions/{id}/messages`): the client deletes one closed
  session's transcript at once. Every message keeps its row and seq (a tombstone: body "",
  `body_purged_at` set), so the apps' seq bookkeeping and sync still work.
- `client_data_erase`: account deletion (`DELETE /api/v1/me`) also erases, in the same
  transaction (accounts.hooks.on_client_erasing): every transcript of the client's sessions (both
  sides' messages: they are about the client), the comments of their ratings, the texts of every
  report on their sessions (theirs and the Bestie's), and their realtime tickets. Scores, reasons,
  timestamps and money stay (docs/privacy.md). It runs again after the open session ended, for a
  message that arrived in between.
"""

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from halobestie.errors import Conflict, NotFound
from sessions_app.models import ChatSession, Message, Rating, RealtimeTicket, Report, SessionEvent, Status

CLOSED_STATUSES = (Status.ENDED, Status.CANCELLED, Status.UNMATCHED)


def _tombstone(messages, *, now) -> int:
    return messages.exclude(body="", client_msg_id="").update(
        body="", client_msg_id="", body_purged_at=Coalesce("body_purged_at", now)
    )


def transcript_erase(*, session_id, client) -> int:
    """Blank every message of the client's closed session. Returns how many changed (0 on a
    repeat). Raises NotFound `session_not_found` (not theirs), Conflict `session_not_ended`."""
    now = timezone.now()
    with transaction.atomic():
        try:
            session = ChatSession.objects.select_for_update(of=("self",)).get(pk=session_id, client=client)
        except (ChatSession.DoesNotExist, ValueError, TypeError):
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found") from None
        if session.status not in CLOSED_STATUSES:
            raise Conflict("Transkrip bisa dihapus setelah sesi selesai.", code="session_not_ended")
        erased = _tombstone(Message.objects.filter(session=session), now=now)
        if erased:
            SessionEvent.objects.create(
                session=session, kind="transcript_erased", actor=client, data={"messages": erased}
            )
    return erased


def client_data_erase(user_id) -> None:
    """Hook for accounts.hooks.on_client_erasing (inside the erasure's transaction)."""
    now = timezone.now()
    sessions = ChatSession.objects.filter(client_id=user_id)
    _tombstone(Message.objects.filter(session__in=sessions), now=now)
    Rating.objects.filter(session__in=sessions).exclude(comment="").update(comment="")
    Report.objects.filter(session__in=sessions).exclude(detail="").update(detail="")
    RealtimeTicket.objects.filter(user_id=user_id).delete()
