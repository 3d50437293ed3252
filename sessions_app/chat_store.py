"""Chat storage: storing a sent message (the hot path: the async pool and its SQL, and the ORM
path, with the crisis flag written in the same statement / transaction), read receipts,
retention. Reads (participants, replay) are in selectors.py, which messages flag and how in
flagging.py, the follow-up of a flag (hotline, free minutes, staff) in handoff.py, the message
types and frames in stored_message.py.

Why storing a message has two implementations:

- On PostgreSQL (tests, production) `message_send` stores the message with ONE SQL statement on
  an async psycopg pool (`_store_postgres`): the UPDATE that allocates the next `seq` (the
  session row lock, held only for that statement) and the INSERT run together, so concurrent
  senders never get a duplicate or a gap, and a failed INSERT (a duplicate `client_msg_id`)
  rolls the allocation back. Measured on this machine (issue 7): the ORM through Channels'
  default `database_sync_to_async` sustains only ≈ 100–200 messages/s per process, because every
  such call in a process shares one thread-sensitive executor; the async pool held ≈ 400–700/s.
- Everywhere else (the SQLite default of `make run`) `_store_orm` does the same through the ORM
  in `database_sync_to_async`: `SELECT … FOR UPDATE`, `last_seq + 1`, insert. It is also the
  reference implementation: tests/realtime/test_chat_store.py checks both give the same results.

Everything that is not the per-message hot path (read receipts, retention) uses the ORM.
Message bodies never go to logs.
"""

import asyncio
import itertools
import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest, Least
from django.utils import timezone
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from halobestie.errors import ServiceError
from halobestie.runtime.selectors import get_config
from mitras.models import Mitra
from sessions_app import flagging, observations, safety
from sessions_app.errors import NotParticipant, SessionNotActive, SessionNotFound
from sessions_app.models import ChatSession, Message, MessageKind, Status
from sessions_app.selectors import session_participants
from sessions_app.stored_message import Sender, StoredMessage

logger = logging.getLogger(__name__)

MAX_BODY_LENGTH = 4000
MAX_CLIENT_MSG_ID_LENGTH = 64


def check_body(body, *, max_length: int = MAX_BODY_LENGTH) -> str:
    """The body to store, or a ServiceError `validation_error` / `body_too_long`."""
    if not isinstance(body, str) or not body.strip():
        raise ServiceError(
            "Pesan tidak boleh kosong.", code="validation_error", fields={"body": ["Wajib diisi."]}
        )
    if len(body) > min(max_length, MAX_BODY_LENGTH):
        raise ServiceError(
            f"Pesan terlalu panjang (maksimal {min(max_length, MAX_BODY_LENGTH)} karakter).",
            code="body_too_long",
        )
    return body


# Sending ---------------------------------------------------------------------------------------


async def message_send(
    *, session_id, sender: Sender, body: str, client_msg_id: str, config=None
) -> StoredMessage:
    """Store a text message from `sender` in an active session they take part in, with the next
    `seq`; committed when this returns (ack and broadcast only then). Contact details are masked
    in what is stored. A resend with the same `client_msg_id` returns the stored message with
    `is_duplicate=True` and stores nothing.

    Raises ServiceError `validation_error` / `body_too_long`, SessionNotFound, NotParticipant,
    SessionNotActive. Precondition: `client_msg_id` is 1–64 characters (the consumer checks)."""
    config = config or await database_sync_to_async(get_config)()
    check_body(body, max_length=config.max_message_length)
    # Flagged in the same statement as the message is stored (issue 20): a crash after the ack
    # never loses the flag; sessions_app/handoff.py does the rest (hotline, free minutes, alert).
    crisis = flagging.crisis_scan(body=body, is_client=sender.mitra_id is None, config=config)
    masked = safety.mask_contacts(body)
    if connection.vendor == "postgresql":
        stored = await _store_postgres(
            session_id=str(session_id), sender=sender, body=masked.text, is_masked=masked.is_masked,
            client_msg_id=client_msg_id, crisis_source=crisis.source,
        )  # fmt: skip
    else:
        stored = await database_sync_to_async(_store_orm)(
            session_id=session_id, sender=sender, body=masked.text, is_masked=masked.is_masked,
            client_msg_id=client_msg_id, crisis_source=crisis.source,
        )  # fmt: skip
    observations.message_stored(stored)
    if stored.is_duplicate:
        return stored
    return replace(stored, crisis_words=crisis.words, crisis_source=crisis.source)


# The ORM implementation (SQLite, and the reference for the Postgres one) -----------------------


def _mitra_user_id(mitra_id):
    if mitra_id is None:
        return None
    return Mitra.objects.filter(pk=mitra_id).values_list("user_id", flat=True).first()


def _existing(session, sender, client_msg_id):
    message = Message.objects.filter(
        session=session, sender_id=sender.user_id, client_msg_id=client_msg_id
    ).first()
    if message is None:
        return None
    return stored_message(message, session, is_duplicate=True)


def stored_message(message, session, *, is_duplicate=False) -> StoredMessage:
    """The StoredMessage of a Message row of `session`."""
    return StoredMessage.of(
        message,
        client_user_id=session.client_id,
        mitra_user_id=_mitra_user_id(session.mitra_id),
        is_duplicate=is_duplicate,
    )


def _refusal(session, sender):
    """Why `sender` may not send in `session` (None if they may)."""
    is_participant = session.client_id == sender.user_id or (
        sender.mitra_id is not None and session.mitra_id == sender.mitra_id
    )
    if not is_participant:
        return NotParticipant()
    if session.status != Status.ACTIVE:
        return SessionNotActive()
    return None


def _store_orm(
    *, session_id, sender: Sender, body, is_masked, client_msg_id, crisis_source=""
) -> StoredMessage:
    try:
        with transaction.atomic():
            session = ChatSession.objects.select_for_update(of=("self",)).filter(pk=session_id).first()
            if session is None:
                raise SessionNotFound()
            existing = _existing(session, sender, client_msg_id)
            if existing is not None:
                return existing
            refusal = _refusal(session, sender)
            if refusal is not None:
                raise refusal
            ChatSession.objects.filter(pk=session.pk).update(last_seq=F("last_seq") + 1)
            seq = ChatSession.objects.filter(pk=session.pk).values_list("last_seq", flat=True).get()
            message = Message.objects.create(
                session=session,
                seq=seq,
                sender_id=sender.user_id,
                kind=MessageKind.TEXT,
                body=body,
                client_msg_id=client_msg_id,
                is_masked=is_masked,
                created_at=timezone.now(),
            )
            if crisis_source:
                flagging.flag_with_message(session=session, message=message, source=crisis_source)
            return stored_message(message, session)
    except IntegrityError:
        # A concurrent resend with the same client_msg_id won the race: answer with its row.
        session = ChatSession.objects.get(pk=session_id)
        existing = _existing(session, sender, client_msg_id)
        if existing is None:
            raise
        return existing


# The PostgreSQL implementation: one statement on an async psycopg pool -------------------------

# With a crisis signal (%(crisis)s true) the same statement flags the session for staff
# (is_flagged, flagged_at once, needs_staff_attention, crisis_followup_pending) and records the
# `crisis_flagged` event naming the message: all or nothing with the message (issue 20). The ORM
# twin is flagging.flag_with_message.
_INSERT_SQL = """
WITH s AS (
    UPDATE sessions_app_chatsession SET last_seq = last_seq + 1,
        is_flagged = is_flagged OR %(crisis)s,
        flagged_at = CASE WHEN %(crisis)s AND flagged_at IS NULL THEN now() ELSE flagged_at END,
        needs_staff_attention = needs_staff_attention OR %(crisis)s,
        crisis_followup_pending = crisis_followup_pending OR %(crisis)s
    WHERE id = %(sid)s AND status = 'active' AND (client_id = %(uid)s OR mitra_id = %(mid)s)
    RETURNING id, last_seq, client_id, mitra_id
), m AS (
    INSERT INTO sessions_app_message
        (session_id, seq, sender_id, kind, body, client_msg_id, is_masked, created_at)
    SELECT s.id, s.last_seq, %(uid)s, 'text', %(body)s, %(cmid)s, %(masked)s, now() FROM s
    RETURNING id, seq, created_at, session_id
), e AS (
    INSERT INTO sessions_app_sessionevent (session_id, kind, actor_id, data, created_at)
    SELECT m.session_id, 'crisis_flagged', NULL,
        jsonb_build_object('message_id', m.id, 'source', %(source)s::text), now()
    FROM m WHERE %(crisis)s
)
SELECT m.id, m.seq, m.created_at,
    (SELECT client_id FROM s),
    (SELECT mm.user_id FROM s JOIN mitras_mitra mm ON mm.id = s.mitra_id)
FROM m
"""

_DIAGNOSE_SQL = """
SELECT s.status, s.client_id, s.mitra_id, mm.user_id, m.id, m.seq, m.created_at, m.body, m.is_masked
FROM sessions_app_chatsession s
LEFT JOIN mitras_mitra mm ON mm.id = s.mitra_id
LEFT JOIN sessions_app_message m
    ON m.session_id = s.id AND m.sender_id = %(uid)s AND m.client_msg_id = %(cmid)s
WHERE s.id = %(sid)s
"""

_pools = {}
_pools_lock = threading.Lock()


def _conninfo() -> str:
    settings_dict = connection.settings_dict
    options = {
        k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if k in ("connect_timeout", "sslmode")
    }
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER"),
        "password": settings_dict.get("PASSWORD"),
        "host": settings_dict.get("HOST"),
        "port": settings_dict.get("PORT"),
        **options,
    }
    return make_conninfo(**{k: str(v) for k, v in params.items() if v not in (None, "")})


async def _pool():
    """The async pool of this event loop (one per loop, so one per server process), opened on
    first use. Sized by REALTIME_DB_POOL_MAX; a full pool makes senders wait, never fail fast."""
    loop = asyncio.get_running_loop()
    entry = _pools.get(loop)
    if entry is None:
        with _pools_lock:
            entry = _pools.get(loop)
            if entry is None:
                pool = AsyncConnectionPool(
                    conninfo=_conninfo(),
                    min_size=settings.REALTIME_DB_POOL_MIN,
                    max_size=settings.REALTIME_DB_POOL_MAX,
                    timeout=settings.REALTIME_DB_POOL_TIMEOUT,
                    kwargs={"autocommit": True},
                    open=False,
                    name="realtime",
                )
                entry = (pool, asyncio.Lock())
                _pools[loop] = entry
    pool, lock = entry
    if pool.closed:
        async with lock:
            if pool.closed:
                await pool.open(wait=False)
    return pool


async def close_pools():
    """Close the pool of the running loop (server shutdown, tests)."""
    entry = _pools.pop(asyncio.get_running_loop(), None)
    if entry is not None and not entry[0].closed:
        await entry[0].close()


async def _store_postgres(
    *, session_id, sender: Sender, body, is_masked, client_msg_id, crisis_source=""
) -> StoredMessage:
    params = {
        "sid": session_id,
        "uid": sender.user_id,
        "mid": sender.mitra_id,
        "body": body,
        "cmid": client_msg_id,
        "masked": is_masked,
        "crisis": bool(crisis_source),
        "source": crisis_source,
    }
    pool = await _pool()
    token = next(_tokens)
    _waiting[token] = time.monotonic()
    try:
        async with pool.connection() as conn:
            del _waiting[token]
            return await _store_on(conn, params, session_id=session_id, sender=sender)
    except PoolTimeout:
        raise Overloaded() from None
    finally:
        _waiting.pop(token, None)


class Overloaded(ServiceError):
    """No database connection for the message in time: refused, neither stored nor acked."""

    status_code = 503
    code = "overloaded"
    detail = "Server sedang sibuk. Kirim ulang sebentar lagi."


# Senders waiting for a connection of the pool, in arrival order (the first is the oldest).
_waiting = {}
_tokens = itertools.count()


def oldest_store_wait() -> float:
    """Seconds the longest-waiting sender of this process has waited for a database connection
    (0 when none waits): the backlog of the message path (realtime.overloaded)."""
    for started in _waiting.values():
        return time.monotonic() - started
    return 0.0


async def _store_on(conn, params, *, session_id, sender) -> StoredMessage:
    body, client_msg_id, is_masked = params["body"], params["cmid"], params["masked"]
    try:
        cursor = await conn.execute(_INSERT_SQL, params)
        row = await cursor.fetchone()
    except pg_errors.UniqueViolation:
        row = None  # a resend: the statement (and its seq allocation) was rolled back
    except pg_errors.InvalidTextRepresentation:
        raise SessionNotFound() from None  # not a UUID
    if row is not None:
        message_id, seq, created_at, client_user_id, mitra_user_id = row
        return StoredMessage(
            id=message_id, session_id=session_id, seq=seq, sender_id=sender.user_id,
            kind=MessageKind.TEXT, body=body, client_msg_id=client_msg_id, is_masked=is_masked,
            created_at=created_at,
            client_user_id=client_user_id, mitra_user_id=mitra_user_id,
        )  # fmt: skip
    # Nothing stored: a resend, or a refusal. Find out which.
    cursor = await conn.execute(_DIAGNOSE_SQL, params)
    found = await cursor.fetchone()
    if found is None:
        raise SessionNotFound()
    (
        status,
        client_user_id,
        mitra_id,
        mitra_user_id,
        message_id,
        seq,
        created_at,
        stored_body,
        stored_masked,
    ) = found
    if message_id is not None:
        return StoredMessage(
            id=message_id, session_id=session_id, seq=seq, sender_id=sender.user_id, kind=MessageKind.TEXT,
            body=stored_body, client_msg_id=client_msg_id, is_masked=stored_masked, created_at=created_at,
            client_user_id=client_user_id, mitra_user_id=mitra_user_id, is_duplicate=True,
        )  # fmt: skip
    is_participant = client_user_id == sender.user_id or (
        sender.mitra_id is not None and mitra_id == sender.mitra_id
    )
    if not is_participant:
        raise NotParticipant()
    raise SessionNotActive()


# Read receipts ---------------------------------------------------------------------------------


def session_mark_read(*, session_id, user_id, up_to_seq: int) -> tuple:
    """Record that `user_id` has read up to `up_to_seq` (never backwards, never past last_seq).
    Returns (read_seq now stored, Participants). Raises SessionNotFound / NotParticipant."""
    participants = session_participants(session_id=session_id, user_id=user_id)
    field = "client_read_seq" if user_id == participants.client_user_id else "mitra_read_seq"
    ChatSession.objects.filter(pk=session_id).update(
        **{field: Greatest(F(field), Least(Value(up_to_seq), F("last_seq")))}
    )
    read_seq = ChatSession.objects.filter(pk=session_id).values_list(field, flat=True).get()
    return read_seq, participants


# Retention -------------------------------------------------------------------------------------


def messages_purge_expired(*, now=None, batch: int = 5000) -> int:
    """Blank the bodies of messages older than `message_retention_days` (body → "", body_purged_at
    set). Idempotent and batched; returns how many were purged this call."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=get_config().message_retention_days)
    ids = list(
        Message.objects.filter(created_at__lt=cutoff, body_purged_at__isnull=True).values_list(
            "id", flat=True
        )[:batch]
    )
    if not ids:
        return 0
    return Message.objects.filter(pk__in=ids, body_purged_at__isnull=True).update(body="", body_purged_at=now)
