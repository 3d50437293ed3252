"""Warm handoff: what follows a crisis flag, and staff stepping into a session.

7 Cups refers and ends; we keep the person talking to a human and bring staff in.

- The flag itself is stored with the message that raised it (sessions_app/flagging.py): the
  session is marked `needs_staff_attention` and `crisis_followup_pending`.
- `crisis_followup`: right after the ack (the consumer) and, for anything a dead process left
  pending, every scheduler tick (`crisis_followups_due`). On the first flag the client gets
  `crisis_free_minutes` (runtime config) added through the extension path at zero cost (the
  mitra's earnings do not change); a client's crisis message brings the hotline text into the
  session as a system message (not more often than every HOTLINE_REPEAT_AFTER). Idempotent.
- The control center shows every session that needs attention on every page, live
  (`attention_list`, polled by templates/admin/base_site.html), until a staff member
  acknowledges it with a note (`attention_acknowledge`, audited).
- Staff can write into the session (`staff_message_post`, audited): a system message
  "Tim HaloBestie: …" with its own seq, live to both sides.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from halobestie.audit.services import audit_record
from halobestie.errors import Conflict, Forbidden, NotFound, ServiceError
from halobestie.runtime.selectors import get_config
from sessions_app import events, lifecycle
from sessions_app.chat_store import stored_message
from sessions_app.flagging import CLIENT
from sessions_app.models import ChatSession, Message, MessageKind, SessionEvent, Status
from sessions_app.stored_message import message_frame

logger = logging.getLogger(__name__)

HOTLINE_REPEAT_AFTER = timedelta(minutes=10)
STAFF_PREFIX = "Tim HaloBestie: "
MAX_STAFF_MESSAGE_LENGTH = 2000
MAX_NOTE_LENGTH = 2000


def _lock(session_id) -> ChatSession:
    try:
        session = ChatSession.objects.select_for_update(of=("self",)).filter(pk=session_id).first()
    except (ValueError, TypeError):
        session = None
    if session is None:
        raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
    return session


def _system_message(session, body: str, *, now) -> Message:
    """Precondition: `session` locked. A system message with the next seq, live to both sides
    after commit."""
    ChatSession.objects.filter(pk=session.pk).update(last_seq=F("last_seq") + 1)
    seq = ChatSession.objects.filter(pk=session.pk).values_list("last_seq", flat=True).get()
    message = Message.objects.create(
        session=session, seq=seq, sender=None, kind=MessageKind.SYSTEM, body=body, created_at=now
    )
    stored = stored_message(message, session)
    events.send_on_commit([stored.client_user_id, stored.mitra_user_id], message_frame(stored))
    return message


# After a flag -----------------------------------------------------------------------------------


def crisis_followup(*, session_id, now=None) -> bool:
    """Do what a crisis flag calls for, once per flagging message (see the module docstring).
    Returns False when nothing was pending."""
    now = now or timezone.now()
    config = get_config()
    with transaction.atomic():
        session = _lock(session_id)
        if not session.crisis_followup_pending:
            return False
        ChatSession.objects.filter(pk=session.pk).update(crisis_followup_pending=False)
        session.crisis_followup_pending = False
        is_first = session.crisis_extension_seconds == 0
        if session.status == Status.ACTIVE and is_first and config.crisis_free_minutes:
            seconds = config.crisis_free_minutes * 60
            session.crisis_extension_seconds = seconds
            lifecycle.session_extend_locked(session, seconds=seconds, amount_idr=0, reason="crisis")
        latest = (
            SessionEvent.objects.filter(session=session, kind="crisis_flagged")
            .order_by("-id")
            .values_list("data", flat=True)
        ).first() or {}
        recent_hotline = Message.objects.filter(
            session=session,
            kind=MessageKind.SYSTEM,
            body=config.hotline_text,
            created_at__gte=now - HOTLINE_REPEAT_AFTER,
        ).exists()
        if latest.get("source") == CLIENT and not recent_hotline:
            _system_message(session, config.hotline_text, now=now)
    logger.warning("session flagged for crisis", extra={"session_id": str(session_id)})
    return True


def crisis_followups_due(*, now=None, limit: int = 100) -> int:
    """Scheduler job: follow-ups a process did not get to (it died right after the ack)."""
    ids = list(
        ChatSession.objects.filter(crisis_followup_pending=True)
        .order_by("flagged_at")
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for session_id in ids if crisis_followup(session_id=session_id, now=now))


# Staff ------------------------------------------------------------------------------------------


def _check_staff(actor):
    if not (actor.is_active and actor.is_staff and actor.has_perm("sessions_app.handle_crisis")):
        raise Forbidden("Perlu izin menangani sesi krisis.", code="permission_denied")


def _text(value, *, field, limit):
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        raise ServiceError("Wajib diisi.", code="validation_error", fields={field: ["Wajib diisi."]})
    if len(value) > limit:
        raise ServiceError(
            f"Paling banyak {limit} karakter.", code="validation_error", fields={field: [f"Maks. {limit}."]}
        )
    return value


def attention_acknowledge(*, session_id, actor, note: str, request=None) -> ChatSession:
    """A staff member takes the flagged session on: `needs_staff_attention` clears, a session
    event and an audit entry record who, when and the note. Raises Forbidden without
    `handle_crisis`, Conflict `attention_not_needed` when nobody needs to."""
    _check_staff(actor)
    note = _text(note, field="note", limit=MAX_NOTE_LENGTH)
    with transaction.atomic():
        session = _lock(session_id)
        if not session.needs_staff_attention:
            raise Conflict("Sesi ini tidak sedang menunggu staf.", code="attention_not_needed")
        ChatSession.objects.filter(pk=session.pk).update(needs_staff_attention=False)
        session.needs_staff_attention = False
        SessionEvent.objects.create(
            session=session, kind="crisis_acknowledged", actor=actor, data={"note": note}
        )
        audit_record(
            actor=actor, action="acknowledge_crisis", obj=session, before={"needs_staff_attention": True},
            after={"needs_staff_attention": False, "note": note}, request=request,
        )  # fmt: skip
    return session


def staff_message_post(*, session_id, actor, text: str, request=None) -> Message:
    """Staff write into a session that has started: a system message "Tim HaloBestie: …" with
    its own seq, live to both sides, audited (the text too: it is staff's own words)."""
    _check_staff(actor)
    text = _text(text, field="text", limit=MAX_STAFF_MESSAGE_LENGTH)
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session_id)
        if session.accepted_at is None:
            raise Conflict("Sesi belum berlangsung.", code="session_not_started")
        message = _system_message(session, STAFF_PREFIX + text, now=now)
        SessionEvent.objects.create(
            session=session, kind="staff_message", actor=actor, data={"message_id": message.id}
        )
        audit_record(
            actor=actor, action="staff_message", obj=session,
            after={"message_id": message.id, "seq": message.seq, "text": text}, request=request,
        )  # fmt: skip
    return message


def attention_list(*, limit: int = 50) -> list:
    """Sessions waiting for staff, oldest flag first (the control center's live alert)."""
    rows = (
        ChatSession.objects.filter(needs_staff_attention=True)
        .order_by("flagged_at")
        .values("id", "status", "flagged_at")[:limit]
    )
    sources = {}
    for session_id, data in (
        SessionEvent.objects.filter(session_id__in=[r["id"] for r in rows], kind="crisis_flagged")
        .order_by("id")
        .values_list("session_id", "data")
    ):
        sources[session_id] = (data or {}).get("source", "")
    return [
        {
            "session_id": str(row["id"]),
            "short_id": str(row["id"])[:8],
            "status": row["status"],
            "flagged_at": row["flagged_at"].isoformat() if row["flagged_at"] else None,
            "source": sources.get(row["id"], ""),
        }
        for row in rows
    ]
