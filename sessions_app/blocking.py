"""Blocking: after a session either side can block the other; the two are never matched again.

A block is one row per client–mitra pair (sessions_app.models.Block), whoever blocked. Matching
respects it in one place: `queue_dispatch` treats a blocked pair like an offer already refused
(`blocked_pairs`), and `session_create` answers a request for a blocked Bestie as if the Bestie
did not exist (`is_blocked`), so neither side learns who blocked.
"""

from django.db import IntegrityError, transaction

from halobestie.errors import Conflict, NotFound
from sessions_app.models import Block, ChatSession, SessionEvent, Status


def block_after_session(*, session_id, user) -> Block:
    """`user` (the session's client or its mitra) blocks the other side of an ended session.
    Idempotent: a pair already blocked (by either side) returns the existing block. Raises
    NotFound `session_not_found` for a non-participant, Conflict `session_not_ended` before the
    end, `session_not_started` when no mitra ever took it."""
    with transaction.atomic():
        try:
            session = (
                ChatSession.objects.select_for_update(of=("self",)).select_related("mitra").get(pk=session_id)
            )
        except (ChatSession.DoesNotExist, ValueError, TypeError):
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found") from None
        is_client = session.client_id == user.id
        is_mitra = session.mitra_id is not None and session.mitra.user_id == user.id
        if not (is_client or is_mitra):
            raise NotFound("Sesi tidak ditemukan.", code="session_not_found")
        if session.accepted_at is None or session.mitra_id is None:
            raise Conflict("Sesi ini tidak pernah berlangsung.", code="session_not_started")
        if session.status != Status.ENDED:
            raise Conflict("Blokir hanya bisa setelah sesi selesai.", code="session_not_ended")
        existing = Block.objects.filter(client_id=session.client_id, mitra_id=session.mitra_id).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                block = Block.objects.create(
                    client_id=session.client_id,
                    mitra_id=session.mitra_id,
                    blocked_by="client" if is_client else "mitra",
                    session=session,
                )
        except IntegrityError:  # the other side blocked at the same moment
            return Block.objects.get(client_id=session.client_id, mitra_id=session.mitra_id)
        SessionEvent.objects.create(
            session=session, kind="blocked", actor=user, data={"by": block.blocked_by}
        )
    return block


def is_blocked(*, client_id, mitra_id) -> bool:
    return Block.objects.filter(client_id=client_id, mitra_id=mitra_id).exists()


def blocked_pairs(sessions) -> set:
    """{(session id, mitra id)} that must never be offered, for the given waiting sessions."""
    by_client = {}
    for session in sessions:
        by_client.setdefault(session.client_id, []).append(session.id)
    pairs = set()
    blocks = Block.objects.filter(client_id__in=by_client).values_list("client_id", "mitra_id")
    for client_id, mitra_id in blocks:
        pairs.update((session_id, mitra_id) for session_id in by_client[client_id])
    return pairs
