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
  Under load the statements of the messages waiting at one moment go in ONE transaction (group
  commit, "Group commit" below): one pool checkout, one pipelined round trip and one commit for
  all of them (issue 22: 0.5 → 0.08 ms of Python CPU per stored message, and the commits that
  made the store the chat's limit are shared).
- Everywhere else (the SQLite default of `make run`) `_store_orm` does the same through the ORM
  in `database_sync_to_async`: `SELECT … FOR UPDATE`, `last_seq + 1`, insert. It is also the
  reference implementation: tests/realtime/test_chat_store.py checks both give the same results.

Everything that is not the per-message hot path (read receipts, retention) uses the ORM.
Message bodies never go to logs.
"""

import asyncio
import collections
import logging
import time
import uuid
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

from halobestie.db.loop_pools import LoopPools
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
        AND NOT EXISTS (
            SELECT 1 FROM sessions_app_message
            WHERE session_id = %(sid)s AND sender_id = %(uid)s AND client_msg_id = %(cmid)s
                AND client_msg_id <> ''
        )
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
    ON m.session_id = s.id AND m.sender_id = %(uid)s AND m.client_msg_id = %(cmid)s AND m.client_msg_id <> ''
WHERE s.id = %(sid)s
"""


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


def _make_pool():
    """This event loop's pool, not yet open: autocommit (a batch is one statement), sized by
    REALTIME_DB_POOL_MAX; a full pool makes senders wait up to REALTIME_DB_POOL_TIMEOUT."""
    return AsyncConnectionPool(
        conninfo=_conninfo(),
        min_size=settings.REALTIME_DB_POOL_MIN,
        max_size=settings.REALTIME_DB_POOL_MAX,
        timeout=settings.REALTIME_DB_POOL_TIMEOUT,
        kwargs={"autocommit": True},
        open=False,
        name="realtime",
    )


_pools = LoopPools(_make_pool)


async def _pool():
    """The async pool of this event loop (one per loop, so one per server process), opened on
    first use (halobestie/db/loop_pools.py)."""
    return await _pools.get()


async def close_pools():
    """Close the pool of the running loop (server shutdown, tests)."""
    _writers.pop(asyncio.get_running_loop(), None)
    await _pools.close()


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
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer(pool)
    future = loop.create_future()
    writer.submit(_Pending(params, sender, future))
    return await future


class Overloaded(ServiceError):
    """No database connection for the message in time: refused, neither stored nor acked."""

    status_code = 503
    code = "overloaded"
    detail = "Server sedang sibuk. Kirim ulang sebentar lagi."


# Group commit (issue 22) -----------------------------------------------------------------------
#
# A message is handed to this process's writer. At most REALTIME_DB_WRITERS statements of the
# writer are in flight at once; while they are, the messages that arrive wait, and the next free
# writer stores ALL of those waiting at that moment (up to MAX_BATCH) with ONE multi-row statement
# (`_BATCH_SQL`, in autocommit: one round trip, one plan, one executor start and one commit for
# all of them, where each message used to be a statement of its own). A lone message (a quiet
# process) is stored alone with `_INSERT_SQL`, as before. In a batch:
# - the sessions' rows are locked in session-id order (`FOR UPDATE` under `ORDER BY`), so two
#   processes' batches never deadlock each other; each session's last_seq grows once by the number
#   of its messages stored, and they get the seqs in arrival order (row_number over the batch's
#   order): no gap, no duplicate, a sender's messages keep their order;
# - a message whose sender is no participant, or whose session is not active, is left out (and the
#   session's count does not include it); afterwards `_settle` says why (one query, refusals only);
# - a resend finds its earlier message and stores nothing: stored before (NOT EXISTS in the
#   statement, then `_settle` finds it), or earlier in the same batch (`_distinct`: only the first
#   goes to Postgres, the resend gets its answer marked as a duplicate);
# - any error (a resend racing another process: unique violation; a deadlock with another kind of
#   transaction; a broken connection) rolls the statement back and every message of the batch is
#   stored again one by one, each in its own statement: one message's failure never harms others.
# Nothing is acked before the commit: the callers' futures get their answers only after it, the
# stored ones at once, then the refused and resent ones (which may need a query each).
#
# The batch window (REALTIME_DB_BATCH_WINDOW_MS): while a process stores messages without a pause
# (its last batch finished less than BUSY_SECONDS ago), the writer that is about to take the next
# batch first waits that long, and one writer at a time does, so that the messages arriving in
# those milliseconds go in its statement too (PostgreSQL's commit_delay, at the level of the
# statement). Measured (issue 22, 1,000 msg/s over two processes): PostgreSQL's CPU per message is
# mostly per statement (0.26–0.37 ms for one message alone, 0.16–0.23 per message in threes), and
# so is psycopg's; without the window a busy process still stored ≈ 2 messages per statement. A
# quiet process (a lone message) is stored at once, without the wait.

MAX_BATCH = 200
BUSY_SECONDS = 0.05  # a process whose last batch ended this recently is storing without a pause
FULL_ENOUGH = 16  # this many waiting: the batch is worth storing now, no window

# The arrays hold one entry per message, in arrival order: session, sender user, sender mitra (or
# NULL), body, client_msg_id, is_masked, crisis (bool), crisis source ("" when none). Returns, for
# each message stored, its 1-based position in the arrays and what `_INSERT_SQL` returns.
_BATCH_SQL = """
WITH i AS MATERIALIZED (
    SELECT * FROM unnest(
        %(sid)s::uuid[], %(uid)s::bigint[], %(mid)s::bigint[], %(body)s::text[], %(cmid)s::text[],
        %(masked)s::boolean[], %(crisis)s::boolean[], %(source)s::text[]
    ) WITH ORDINALITY AS i (sid, uid, mid, body, cmid, masked, crisis, source, n)
), locked AS MATERIALIZED (
    SELECT id, last_seq, client_id, mitra_id FROM sessions_app_chatsession
    WHERE id = ANY(%(sid)s::uuid[]) AND status = 'active'
    ORDER BY id
    FOR UPDATE
), ok AS MATERIALIZED (
    SELECT i.*, locked.last_seq + row_number() OVER (PARTITION BY i.sid ORDER BY i.n) AS seq,
        locked.client_id, locked.mitra_id
    FROM i JOIN locked ON locked.id = i.sid
    WHERE (locked.client_id = i.uid OR locked.mitra_id = i.mid)
        AND NOT EXISTS (
            SELECT 1 FROM sessions_app_message
            WHERE session_id = i.sid AND sender_id = i.uid AND client_msg_id = i.cmid
                AND client_msg_id <> ''
        )
), s AS (
    UPDATE sessions_app_chatsession c SET last_seq = counts.last_seq,
        is_flagged = c.is_flagged OR counts.crisis,
        flagged_at = CASE WHEN counts.crisis AND c.flagged_at IS NULL THEN now() ELSE c.flagged_at END,
        needs_staff_attention = c.needs_staff_attention OR counts.crisis,
        crisis_followup_pending = c.crisis_followup_pending OR counts.crisis
    FROM (SELECT sid, max(seq) AS last_seq, bool_or(crisis) AS crisis FROM ok GROUP BY sid) counts
    WHERE c.id = counts.sid
), m AS (
    INSERT INTO sessions_app_message
        (session_id, seq, sender_id, kind, body, client_msg_id, is_masked, created_at)
    SELECT sid, seq, uid, 'text', body, cmid, masked, now() FROM ok
    RETURNING id, seq, created_at, session_id
), e AS (
    INSERT INTO sessions_app_sessionevent (session_id, kind, actor_id, data, created_at)
    SELECT m.session_id, 'crisis_flagged', NULL,
        jsonb_build_object('message_id', m.id, 'source', ok.source), now()
    FROM m JOIN ok ON ok.sid = m.session_id AND ok.seq = m.seq
    WHERE ok.crisis
)
SELECT ok.n, m.id, m.seq, m.created_at, ok.client_id, mm.user_id
FROM m JOIN ok ON ok.sid = m.session_id AND ok.seq = m.seq
LEFT JOIN mitras_mitra mm ON mm.id = ok.mitra_id
"""


class _Pending:
    __slots__ = ("params", "sender", "future", "since")

    def __init__(self, params, sender, future):
        self.params, self.sender, self.future = params, sender, future
        self.since = time.monotonic()


class _Writer:
    def __init__(self, pool):
        self.pool = pool
        self.pending = collections.deque()
        self.running = 0
        self.tasks = set()
        self.lingering = False  # a writer waits out the batch window: the arrivals are its
        self.stored_at = -1e9  # monotonic: when the last batch of this process was stored

    def submit(self, item):
        self.pending.append(item)
        # Never more writers than connections: a writer waiting for one would hide its batch's
        # wait from oldest_wait(). None while one waits out the batch window: it takes these.
        limit = min(settings.REALTIME_DB_WRITERS, settings.REALTIME_DB_POOL_MAX)
        if self.running < limit and not self.lingering:
            self.running += 1
            task = asyncio.get_running_loop().create_task(self._run())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def oldest_wait(self) -> float:
        return time.monotonic() - self.pending[0].since if self.pending else 0.0

    async def _run(self):
        try:
            while self.pending:
                await self._batch_window()
                batch = []
                while self.pending and len(batch) < MAX_BATCH:
                    item = self.pending.popleft()
                    if not item.future.done():  # a sender that went away before its turn: not stored
                        batch.append(item)
                if batch:
                    await _store_batch(self.pool, batch)
                    self.stored_at = time.monotonic()
        finally:
            # No await between finding `pending` empty and this: a message submitted meanwhile
            # always finds a writer that will take it, or starts one.
            self.running -= 1

    async def _batch_window(self):
        """Wait REALTIME_DB_BATCH_WINDOW_MS before taking a batch while the process is busy
        ("Group commit" above); at once when quiet, when enough wait already, or when another
        writer is waiting out the window."""
        window = settings.REALTIME_DB_BATCH_WINDOW_MS / 1000
        if window <= 0 or self.lingering or len(self.pending) >= FULL_ENOUGH:
            return
        if time.monotonic() - self.stored_at > BUSY_SECONDS:
            return
        self.lingering = True
        try:
            await asyncio.sleep(window)
        finally:
            self.lingering = False


_writers = {}


def oldest_store_wait() -> float:
    """Seconds the longest-waiting message of this process has waited for its turn to be stored
    (0 when none waits): the backlog of the message path (realtime.overloaded)."""
    writer = _writers.get(asyncio.get_running_loop())
    return writer.oldest_wait() if writer is not None else 0.0


def _answer(item, outcome):
    if not item.future.done():
        if isinstance(outcome, BaseException):
            item.future.set_exception(outcome)
        else:
            item.future.set_result(outcome)


async def _store_batch(pool, batch):
    try:
        async with pool.connection() as conn:
            if len(batch) > 1:
                try:
                    await _store_together(conn, batch)
                except pg_errors.Error:
                    pass  # rolled back (nothing answered yet): one by one below
                else:
                    return
            for item in batch:
                try:
                    _answer(item, await _store_on(conn, item.params, sender=item.sender))
                except Exception as exc:
                    _answer(item, exc)
    except PoolTimeout:
        for item in batch:
            _answer(item, Overloaded())
    except Exception as exc:
        for item in batch:
            _answer(item, exc)


def _distinct(batch):
    """The messages to store (the first of each (session, sender, client_msg_id); a session id that
    is no UUID is answered at once), and the resends of this batch with the message they repeat."""
    first, resends, refused = {}, [], []
    for item in batch:
        params = item.params
        try:
            uuid.UUID(params["sid"])
        except ValueError:
            refused.append(item)
            continue
        key = (params["sid"], params["uid"], params["cmid"])
        if key in first:
            resends.append((item, first[key]))
        else:
            first[key] = item
    return list(first.values()), resends, refused


async def _store_together(conn, batch):
    """Store the messages of `batch` with one `_BATCH_SQL` (autocommit) and answer every one of
    them. Raises pg_errors.Error (nothing stored, nothing answered) when the statement fails."""
    items, resends, refused = _distinct(batch)
    rows = []
    if items:
        columns = {name: [item.params[name] for item in items] for name in _BATCH_COLUMNS}
        cursor = await conn.execute(_BATCH_SQL, columns)
        rows = await cursor.fetchall()  # committed
    outcomes = {}
    for n, *row in rows:
        item = items[n - 1]
        outcomes[item] = _stored(item.params, item.sender, row)
        _answer(item, outcomes[item])  # the ack, right after the commit
    for item in refused:
        _answer(item, SessionNotFound())
    for item in items:
        if item not in outcomes:  # refused, or a resend of a message stored before
            try:
                outcomes[item] = await _settle(conn, item, None)
            except Exception as exc:
                outcomes[item] = exc
            _answer(item, outcomes[item])
    for item, repeated in resends:
        outcome = outcomes[repeated]
        _answer(item, outcome if isinstance(outcome, Exception) else replace(outcome, is_duplicate=True))


_BATCH_COLUMNS = ("sid", "uid", "mid", "body", "cmid", "masked", "crisis", "source")


async def _store_on(conn, params, *, sender) -> StoredMessage:
    """One message in its own statement (autocommit)."""
    try:
        cursor = await conn.execute(_INSERT_SQL, params)
        row = await cursor.fetchone()
    except pg_errors.UniqueViolation:
        row = None  # a resend racing its first send: the statement (and its seq) rolled back
    except pg_errors.InvalidTextRepresentation:
        raise SessionNotFound() from None  # not a UUID
    outcome = await _settle(conn, _Pending(params, sender, None), row)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _stored(params, sender, row) -> StoredMessage:
    """The message just stored, from its statement's row (id, seq, created_at, the participants)."""
    message_id, seq, created_at, client_user_id, mitra_user_id = row
    return StoredMessage(
        id=message_id, session_id=params["sid"], seq=seq, sender_id=sender.user_id,
        kind=MessageKind.TEXT, body=params["body"], client_msg_id=params["cmid"],
        is_masked=params["masked"], created_at=created_at,
        client_user_id=client_user_id, mitra_user_id=mitra_user_id,
    )  # fmt: skip


async def _settle(conn, item, row) -> StoredMessage | Exception:
    """The answer for a message whose statement returned `row` (committed): the stored message,
    or, when nothing was stored, the earlier message with its client_msg_id (a resend) or why it
    was refused."""
    params, sender = item.params, item.sender
    session_id, client_msg_id = params["sid"], params["cmid"]
    if row is not None:
        return _stored(params, sender, row)
    # Nothing stored: a resend, or a refusal. Find out which.
    cursor = await conn.execute(_DIAGNOSE_SQL, params)
    found = await cursor.fetchone()
    if found is None:
        return SessionNotFound()
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
        return NotParticipant()
    return SessionNotActive()


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
