"""The chat socket `/ws/v1/` (protocol: docs/realtime.md).

One socket per app connection, scoped to the user and carrying every session of that user. It
joins the channel-layer group `user.<id>`; whatever the services send there (`deliver.frame`,
after commit) is forwarded as is. Incoming frames are validated one by one: a bad frame gets an
`error` frame and the socket stays open.

Authentication happens after the handshake is accepted: an unauthenticated socket gets an
`error` frame (`unauthenticated`, `token_not_valid`, `ticket_not_valid`, …) and is closed with
4001, because an app cannot read the HTTP status of a refused handshake but can read a close code.

Handlers skip Channels' per-message `aclose_old_connections()`: it is a hop into the process's
single thread-sensitive executor before every handler (measured in issue 7: ≈ 400 → 700
messages/s without it). It is safe to skip because no handler here touches a Django connection
directly: the message hot path uses its own async psycopg pool (sessions_app/chat_store.py), and every
ORM call goes through `database_sync_to_async`, which closes stale connections itself before and
after running.
"""

import asyncio
import collections
import contextlib
import functools
import json
import logging
import time
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from halobestie.errors import ServiceError
from halobestie.runtime.selectors import get_config
from halobestie.server import drain, safe_input, send_now
from mitras.services import mitra_heartbeat
from sessions_app import (
    chat_store,
    errors,
    events,
    handoff,
    notifications,
    observations,
    realtime,
    safety,
    selectors,
    socket_batches,
    stored_message,
)
from sessions_app.tickets import socket_bearer_claims, socket_user

logger = logging.getLogger(__name__)

MAX_FRAME_CHARACTERS = 20_000
CLOSE_UNAUTHENTICATED = 4001
CLOSE_FORCED = 4003
CLOSE_TOO_MANY = 4029
SYNC_PAGE = 200
SYNC_MAX_SESSIONS = 50
CONFIG_CACHE_SECONDS = 5.0
PARTICIPANTS_CACHE = 64
NEW_CHANNEL_TIMEOUT_SECONDS = 3.0
_closing = set()  # close tasks of overflowed sockets (a reference until they are done)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FrameError(Exception):
    def __init__(self, code, detail, ref=None):
        super().__init__(code)
        self.code, self.detail, self.ref = code, detail, ref


_config = {"expires": 0.0, "values": None, "refresh": None}


async def _runtime_config():
    """The runtime config, re-read at most every few seconds per process and off the message path:
    once it has a value, an expired one is served while ONE background task re-reads it (issue 22:
    every message that arrived while the cache was expired used to queue its own read on the
    process's single thread-sensitive executor, a pile-up every 5 s under load)."""
    values, refresh = _config["values"], _config["refresh"]
    if values is not None and _config["expires"] >= time.monotonic():
        return values
    if refresh is None or refresh.done():
        refresh = _config["refresh"] = asyncio.get_running_loop().create_task(_refresh_config())
    if values is not None:
        return values
    return await asyncio.shield(refresh)


async def _refresh_config():
    try:
        values = await database_sync_to_async(get_config)()
    except Exception:
        if _config["values"] is None:
            raise
        # Keep serving the last values; try again in a second (not once per message).
        logger.warning("runtime config re-read failed", exc_info=True)
        _config["expires"] = time.monotonic() + 1.0
        return _config["values"]
    _config.update(expires=time.monotonic() + CONFIG_CACHE_SECONDS, values=values)
    return values


def _session_id(frame, ref):
    value = frame.get("session_id")
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else _invalid("session_id", ref)
    except ValueError:
        return _invalid("session_id", ref)


def _invalid(field, ref, detail="Nilai tidak valid."):
    raise FrameError("validation_error", f"{field}: {detail}", ref)


def _unrevealing(code, detail):
    """No existence oracle: a session the user takes no part in is answered exactly like one that
    does not exist (`session_not_found`), so a socket cannot probe which session ids are real."""
    if code == errors.NotParticipant.code:
        return errors.SessionNotFound.code, errors.SessionNotFound.detail
    return code, detail


def _int_field(frame, field, ref, *, minimum=0):
    value = frame.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _invalid(field, ref, f"harus bilangan bulat ≥ {minimum}.")
    return value


async def _accept_and_close(receive, send, code):
    """Speak just enough ASGI to accept the handshake and close it with `code`."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})


async def _dispatch_frames(receive, dispatch, lock):
    """The socket's frames, one at a time, in this task (no reader task of its own); `lock` is
    shared with the channel-layer deliveries (ChatConsumer._drain_inbox). StopConsumer at
    disconnect ends it."""
    while True:
        message = await receive()
        async with lock:
            await dispatch(message)


async def _dispatch_both(receive, channel_receive, dispatch):
    """Channels' await_many_dispatch without its per-message cost (issue 22): it creates a task and
    runs an asyncio.wait for every frame and every delivery. Here one long-lived reader per
    source; a lock keeps Channels' guarantee that handlers run one at a time, in arrival order per
    source. The first exception (StopConsumer at disconnect) ends both readers. Only for a layer
    without `attach` (the in-memory layer of development)."""
    lock = asyncio.Lock()

    async def pump(source):
        while True:
            message = await source()
            async with lock:
                await dispatch(message)

    tasks = [asyncio.ensure_future(pump(receive)), asyncio.ensure_future(pump(channel_receive))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ChatConsumer(AsyncWebsocketConsumer):
    user_id = None
    mitra_id = None
    token_jti = None
    inbox = None  # channel-layer frames waiting while the consumer is busy (None when none wait)
    drainer = None  # the task handing them to `dispatch`
    overflowed = False
    send_text_now = None  # the server's synchronous writer (halobestie/server/send_now.py), if any
    answer_written = False  # the frame holding dispatch_lock has had its whole answer written

    # Channels' dispatch without the per-handler aclose_old_connections() hop (module docstring).
    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # Connection ------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        """Channels' AsyncConsumer.__call__, except that:
        - a channel layer that cannot give this socket its channel (Valkey down) no longer fails the
          upgrade with an HTTP 500: the socket is accepted and closed with 1012 (service restart),
          as docs/realtime.md promises, and the outage is logged once
          (sessions_app.realtime.layer_unavailable_at_upgrade);
        - with our layer (sessions_app/layer.py) the socket's channel is `attach`ed: no queue, no
          reader task and no Valkey round trip per socket; a frame from the layer is queued only
          while the consumer is busy (`_delivered`). Frames are read in this task (issue 22: idle
          memory and reconnect storms)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        attach = getattr(self.channel_layer, "attach", None)
        try:
            async with asyncio.timeout(NEW_CHANNEL_TIMEOUT_SECONDS):
                if attach is not None:
                    await self.channel_layer.ensure_subscriber()
                else:
                    self.channel_name = await self.channel_layer.new_channel()
        except Exception as exc:
            realtime.layer_unavailable_at_upgrade(exc)
            await _accept_and_close(receive, send, realtime.CLOSE_SERVICE_RESTART)
            return
        if attach is not None:
            self.send_text_now = (scope.get("extensions") or {}).get(send_now.EXTENSION)
            self.channel_name = attach(self._delivered)
            self.dispatch_lock = asyncio.Lock()
            try:
                with contextlib.suppress(StopConsumer):
                    await _dispatch_frames(receive, self.dispatch, self.dispatch_lock)
            except asyncio.CancelledError:
                if not drain.is_stopping():
                    raise
                # The end of GRACEFUL_SHUTDOWN_SECONDS: uvicorn cancels what is left and says so
                # once; a traceback per socket (2,000 at a busy shutdown) cost seconds of CPU.
            finally:
                self.channel_layer.detach(self.channel_name)
                if self.drainer is not None:
                    self.drainer.cancel()
            return
        realtime.layer_available_at_upgrade()
        on_overflow = getattr(self.channel_layer, "on_overflow", None)
        if on_overflow is not None:
            on_overflow(self.channel_name, self._queue_overflowed)
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        with contextlib.suppress(StopConsumer):
            await _dispatch_both(receive, self.channel_receive, self.dispatch)

    def _delivered(self, data):
        """The layer's callback for this socket's channel (called as each frame arrives, in the
        layer's receive loop: it must not raise or await). A chat message written at once when
        nothing stands in the way (`_wrote_now`); anything else queued, and handed to `dispatch`
        in order by one short-lived task. Past REALTIME_SOCKET_QUEUE waiting frames: dropped,
        and the socket closed with 1013 (`_queue_overflowed`)."""
        inbox = self.inbox
        if not inbox and self.drainer is None:
            # Nothing waits ahead of this frame: it may go out now without passing anything.
            message = self.channel_layer.deserialize(data)
            if self._wrote_now(message):
                return
            data = message  # queued deserialised (`_drain_inbox`)
        if inbox is None:
            inbox = self.inbox = collections.deque()
        limit = settings.REALTIME_SOCKET_QUEUE
        if limit > 0 and len(inbox) >= limit:
            if not self.overflowed:
                self.overflowed = True
                self._queue_overflowed()
            return
        inbox.append(data)
        if self.drainer is None:
            self.drainer = asyncio.get_running_loop().create_task(self._drain_inbox())

    def _wrote_now(self, message) -> bool:
        """The delivery fast path (issue 22, "chat past the relay"): a chat message frame
        (`deliver.frame` with its serialised `text`) written to the socket synchronously, with
        what `deliver_frame` observes, and no task, lock or coroutine (≈ 10 % of a process's CPU
        at 1,000 msg/s went to that path). False, nothing written, in every other case; the
        frame then takes the queued path, which does what it always did.

        Only while `dispatch_lock` is free, or held by a handler that has written its whole
        answer (`answer_written`): a handler holding it may be between frames whose order the
        apps see (docs/realtime.md): `hello` before anything else (`connect` holds the lock
        across its `group_add`, so a message could otherwise overtake it); a `sync` reply's
        `message.new` frames then its `sync.done`; `message.ack` then its `message.masked`.
        `on_message_send` sets `answer_written` once its ack (and masked notice) are written,
        for the broadcast it then awaits: the echo of the sender's own message arrives during
        that await, so it is written now and still after its ack (the message is published only
        after the ack was written). Everywhere else a frame arriving while the lock is held
        waits for it (a few milliseconds per incoming frame; most deliveries find it free).
        Frames of other types (session.updated, typing, read, force_close, …) always take the
        queued path: their handlers do more than write (a cache to drop, a close)."""
        send_text_now = self.send_text_now
        if send_text_now is None or getattr(self, "closing", False):
            return False
        if self.dispatch_lock.locked() and not self.answer_written:
            return False
        text = message.get("text")
        if text is None or message.get("type") != "deliver.frame":
            return False
        try:
            if not send_text_now(text):
                return False
        except Exception:
            # It does not raise; if it ever did, the queued path meets the same fault and
            # handles it as it always has (ClientDisconnected: quiet; else logged, closed 1011).
            logger.warning("writing a frame now failed", exc_info=True)
            return False
        observations.message_delivered(
            sender_id=message.get("sender_id"),
            stored_at=message.get("stored_at"),
            recipient_user_id=self.user_id,
        )
        return True

    async def _drain_inbox(self):
        try:
            while self.inbox:
                item = self.inbox.popleft()
                # The first frame of a queue was deserialised by `_delivered` already.
                message = item if type(item) is dict else self.channel_layer.deserialize(item)
                async with self.dispatch_lock:
                    await self.dispatch(message)
        except Exception as exc:
            self.inbox = None
            if type(exc).__name__ == "ClientDisconnected":
                return  # the app went away meanwhile (uvicorn); `disconnect` cleans up
            # As an exception in a handler ends a Channels consumer: the socket closes (1011).
            logger.exception("channel-layer frame failed", extra={"user_id": self.user_id})
            with contextlib.suppress(Exception):
                await self.close_with(1011)
        finally:
            self.drainer = None
            if not self.inbox:
                self.inbox = None  # an idle socket holds no queue

    async def connect(self):
        await self.accept()
        if drain.is_draining():
            await self.close_with(realtime.CLOSE_SERVICE_RESTART)
            return
        headers = dict(self.scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        ticket = (query.get("ticket") or [None])[0]
        try:
            # A Bearer token is verified in memory; the account and deny-list check is batched
            # with every other socket connecting now (sessions_app/socket_batches.py).
            claims = socket_bearer_claims(authorization) if authorization else None
            if claims is not None:
                user = await socket_batches.socket_user_for_claims(claims)
            else:
                user = await database_sync_to_async(socket_user)(authorization=authorization, ticket=ticket)
        except ServiceError as exc:
            await self.send_error(exc.code, exc.detail)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self._within_socket_cap(user.id):
            return
        self.user_id = user.id
        self.token_jti = getattr(user, "socket_token_jti", None)
        self.role = user.role
        self.mitra = getattr(user, "mitra", None) if user.role == "mitra" else None
        self.mitra_id = self.mitra.id if self.mitra else None
        self.sender = stored_message.Sender(user_id=user.id, mitra_id=self.mitra_id)
        self.message_bucket = TokenBucket(
            settings.REALTIME_MESSAGES_PER_SECOND, settings.REALTIME_MESSAGES_BURST
        )
        self.frame_bucket = TokenBucket(settings.REALTIME_FRAMES_PER_SECOND, settings.REALTIME_FRAMES_BURST)
        self.participants = {}
        self.presence_refreshed = time.monotonic()
        self.tasks = set()
        try:
            # Bounded: a Valkey that does not answer must not hold the socket open (closed with 1012).
            async with asyncio.timeout(NEW_CHANNEL_TIMEOUT_SECONDS):
                await self.channel_layer.group_add(events.user_group(user.id), self.channel_name)
        except Exception as exc:
            realtime.layer_unavailable_at_upgrade(exc)
            await self.close_with(realtime.CLOSE_SERVICE_RESTART)
            return
        realtime.layer_available_at_upgrade()
        self.joined = True
        realtime.register(self)
        realtime.ensure_watchdog()
        # One re-check task per process, not one per socket (sessions_app/socket_batches.py).
        socket_batches.ensure_recheck()
        await self.send_json({"type": "hello", "user_id": user.id, "role": user.role})

    async def _within_socket_cap(self, user_id) -> bool:
        """At most REALTIME_MAX_SOCKETS_PER_USER sockets per user on all processes (this
        process's only while Valkey is down); past it: `too_many_sockets`, closed with 4029."""
        count = await realtime.socket_open_count(user_id, self.channel_name)
        if count is None:
            count = 1 + sum(1 for c in realtime.local_consumers() if c.user_id == user_id)
        if count <= settings.REALTIME_MAX_SOCKETS_PER_USER:
            return True
        await realtime.socket_closed(user_id, self.channel_name)
        await self.send_error("too_many_sockets", "Terlalu banyak koneksi terbuka untuk akun ini.")
        await self.close_with(CLOSE_TOO_MANY)
        return False

    async def close_refused(self, refusal):
        """The process-wide re-check (sessions_app/socket_batches.py) refused this socket's user or
        token: the `error` frame, then 4003 for a deactivated mitra, else 4001."""
        await self.send_error(refusal.code, refusal.detail)
        await self.close_with(CLOSE_FORCED if refusal.code == "mitra_deactivated" else CLOSE_UNAUTHENTICATED)

    async def websocket_disconnect(self, message):
        """Channels' websocket_disconnect without its `aclose_old_connections()`: a hop into the
        process's single thread-sensitive executor for every closing socket (module docstring:
        no handler here holds a Django connection of its own). At a shutdown or a reconnect
        storm 2,000 sockets closing queued 2,000 hops on that one thread (issue 22)."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code):
        if self.user_id is None:
            return
        realtime.unregister(self)
        for task in list(getattr(self, "tasks", ())):
            task.cancel()
        # A process that is stopping (halobestie/serve.py) skips the UNSUBSCRIBE: its subscriber
        # connection, and every subscription with it, ends with the process (issue 22: 2,000
        # sockets closing at shutdown paid 2,000 confirmations to parse).
        if getattr(self, "joined", False) and not drain.is_stopping():
            try:
                await self.channel_layer.group_discard(events.user_group(self.user_id), self.channel_name)
            except Exception:
                logger.warning("group_discard failed", exc_info=True)
        await realtime.socket_closed(self.user_id, self.channel_name)

    def _queue_overflowed(self):
        """More frames wait for this socket than REALTIME_SOCKET_QUEUE (sessions_app.layer): the
        app is not reading, or this process is far behind. Closed with 1013 (try again later)
        instead of queueing without bound; the app reconnects and `sync`s what it missed."""
        logger.warning("socket queue full: closed with 1013", extra={"user_id": self.user_id})
        task = asyncio.get_running_loop().create_task(self.close_with(realtime.CLOSE_TRY_AGAIN_LATER))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    async def close_with(self, code):
        """Close the socket with `code` (once)."""
        if getattr(self, "closing", False):
            return
        self.closing = True
        await self.close(code=code)

    # Outgoing --------------------------------------------------------------------------------

    async def send_json(self, frame):
        await self.send(text_data=json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def send_error(self, code, detail, ref=None):
        frame = {"type": "error", "code": code, "detail": str(detail)}
        if ref is not None:
            frame["ref"] = ref
        await self.send_json(frame)

    # Channel-layer handlers ------------------------------------------------------------------

    async def deliver_frame(self, event):
        text = event.get("text")
        if text is not None:
            # A chat message, serialised once by its sender for every recipient (message path).
            await self.send(text_data=text)
            observations.message_delivered(
                sender_id=event.get("sender_id"),
                stored_at=event.get("stored_at"),
                recipient_user_id=self.user_id,
            )
            return
        frame = event.get("frame") or {}
        if frame.get("type") == "session.updated":
            # A session's state changed: its participants may have too (offer → active).
            session = frame.get("session") or {}
            self.participants.pop(str(session.get("id")), None)
        await self.send_json(frame)
        observations.frame_delivered(frame, recipient_user_id=self.user_id)

    async def force_close(self, event):
        await self.send_error("account_deactivated", "Akun dinonaktifkan. Hubungi tim HaloBestie.")
        await self.close_with(CLOSE_FORCED)

    # Incoming --------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.user_id is None or getattr(self, "closing", False):
            return
        ref = None
        try:
            if text_data is None:
                raise FrameError("bad_frame", "Hanya frame teks JSON yang diterima.")
            if len(text_data) > MAX_FRAME_CHARACTERS:
                raise FrameError("frame_too_large", f"Frame melebihi {MAX_FRAME_CHARACTERS} karakter.")
            if not self.frame_bucket.take():
                raise FrameError("rate_limited", "Terlalu banyak frame. Pelan-pelan ya.")
            try:
                frame = safe_input.loads(text_data)
            except safe_input.HostileInput as exc:
                # Too deep, or a NUL / lone surrogate in some string (body, client_msg_id, …).
                raise FrameError("validation_error", str(exc)) from None
            except ValueError:
                raise FrameError("bad_frame", "Frame bukan JSON yang valid.") from None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise FrameError("bad_frame", "Frame harus objek JSON dengan 'type'.")
            kind = frame["type"]
            ref = kind[:64]
            handler = self.HANDLERS.get(kind)
            if handler is None:
                raise FrameError("unknown_type", "Jenis frame tidak dikenal.", ref)
            await self._refresh_presence()
            await handler(self, frame)
        except FrameError as exc:
            await self.send_error(
                *_unrevealing(exc.code, exc.detail), exc.ref if exc.ref is not None else ref
            )
        except ServiceError as exc:
            await self.send_error(*_unrevealing(exc.code, exc.detail), ref)
        except Exception as exc:
            if type(exc).__name__ == "ClientDisconnected":
                return  # the app went away while its frame was handled (uvicorn): nothing to answer
            logger.exception("chat frame failed", extra={"user_id": self.user_id, "frame_type": ref})
            await self.send_error("server_error", "Terjadi kesalahan di server. Coba lagi.", ref)

    async def _refresh_presence(self):
        if time.monotonic() - self.presence_refreshed > realtime.SOCKET_TTL_SECONDS / 4:
            self.presence_refreshed = time.monotonic()
            await realtime.socket_opened(self.user_id, self.channel_name)

    async def _participants(self, session_id, ref):
        """The session's participants (cached per socket once the mitra is fixed)."""
        cached = self.participants.get(session_id)
        if cached is not None:
            return cached
        try:
            participants = await database_sync_to_async(selectors.session_participants)(
                session_id=session_id, user_id=self.user_id
            )
        except ServiceError as exc:
            raise FrameError(exc.code, exc.detail, ref) from None
        if participants.mitra_user_id is not None and participants.status in ("active", "ended"):
            if len(self.participants) >= PARTICIPANTS_CACHE:
                self.participants.pop(next(iter(self.participants)))
            self.participants[session_id] = participants
        return participants

    async def on_message_send(self, frame):
        client_msg_id = frame.get("client_msg_id")
        if (
            not isinstance(client_msg_id, str)
            or not 1 <= len(client_msg_id) <= chat_store.MAX_CLIENT_MSG_ID_LENGTH
        ):
            raise FrameError("validation_error", "client_msg_id: wajib, 1–64 karakter.", "message.send")
        ref = client_msg_id
        session_id = _session_id(frame, ref)
        body = frame.get("body")
        if not isinstance(body, str):
            _invalid("body", ref, "wajib berupa teks.")
        if realtime.overloaded(chat_store.oldest_store_wait()):
            # Shed load: refused before anything is stored, so nothing acked waits in a backlog.
            raise FrameError("overloaded", "Server sedang sibuk. Kirim ulang sebentar lagi.", ref)
        # One bucket per user across all sockets (Valkey); the socket's own while Valkey is down.
        allowed = await realtime.user_message_allowed(self.user_id)
        if not (allowed if allowed is not None else self.message_bucket.take()):
            raise FrameError("rate_limited", "Terlalu banyak pesan. Tunggu sebentar.", ref)
        config = await _runtime_config()
        try:
            stored = await chat_store.message_send(
                session_id=session_id,
                sender=self.sender,
                body=body,
                client_msg_id=client_msg_id,
                config=config,
            )
        except ServiceError as exc:
            raise FrameError(exc.code, exc.detail, ref) from None
        try:
            await self.send_json(stored_message.ack_frame(stored))
            if stored.is_masked and not stored.is_duplicate:
                await self.send_json(
                    {"type": "message.masked", "session_id": session_id, "client_msg_id": client_msg_id,
                     "detail": safety.MASKED_NOTICE}
                )  # fmt: skip
        except Exception:
            # The sender's socket went away after the commit: the message is stored, so the
            # other participant still gets it now (the sender's app resends and gets the ack).
            if not stored.is_duplicate:
                await self._after_store(stored)
            raise
        if stored.is_duplicate:
            # A resend (same client_msg_id): the same ack, and nothing else. The first send
            # broadcast the message; if that broadcast was lost, `sync` brings it.
            return
        # Every frame of this answer is written: chat messages may go out now (`_wrote_now`),
        # the echo of this very message among them (it arrives while the broadcast is awaited).
        self.answer_written = True
        try:
            await self._after_store(stored)
        finally:
            self.answer_written = False

    async def _after_store(self, stored):
        """A new message is stored: broadcast it, push when the recipient has no socket, and
        the crisis follow-up."""
        other = stored.mitra_user_id if self.user_id == stored.client_user_id else stored.client_user_id
        open_sockets = await self._broadcast_message(stored, other)
        if open_sockets is None:
            self._background(self._push_if_offline(stored, other))  # checks the sockets itself
        elif open_sockets == 0:
            self._background(self._push(stored, other))
        if stored.crisis_source:
            # The flag is stored already (with the message); this is the follow-up.
            self._background(self._crisis_followup(stored))

    async def _broadcast_message(self, stored, other):
        """The message frame to every socket of both participants: serialised once, published
        to both groups with the recipient's open-socket count read in the same Valkey round trip
        (sessions_app.layer). Returns that count (0: push), or None when it is not known."""
        frame = stored_message.message_frame(stored)
        recipients = [uid for uid in (stored.client_user_id, stored.mitra_user_id) if uid is not None]
        publish = getattr(self.channel_layer, "publish_message", None)
        if publish is None:  # the in-memory layer (development)
            for user_id in recipients:
                await self._group_send(user_id, frame)
            return None
        event = {
            "type": "deliver.frame",
            "text": json.dumps(frame, ensure_ascii=False, separators=(",", ":")),
            "sender_id": stored.sender_id,
            "stored_at": stored.created_at.timestamp(),
        }
        try:
            count = await publish(
                event,
                [events.user_group(uid) for uid in recipients],
                realtime.sockets_key(other) if other is not None else "",
            )
        except Exception:
            # Stored and acked already: the recipient gets it by `sync` (the watchdog closes
            # sockets with 1012 when the layer is down, so the apps reconnect and sync).
            logger.warning("broadcast failed", extra={"frame_type": "message.new"}, exc_info=True)
            return None
        return None if other is None or count < 0 else int(count)

    async def _group_send(self, user_id, frame):
        try:
            await self.channel_layer.group_send(
                events.user_group(user_id), {"type": "deliver.frame", "frame": frame}
            )
        except Exception:
            # Stored and acked already: the recipient gets it by `sync` (the watchdog closes
            # sockets with 1012 when the layer is down, so the apps reconnect and sync).
            logger.warning("broadcast failed", extra={"frame_type": frame.get("type")}, exc_info=True)

    def _background(self, coroutine):
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _push_if_offline(self, stored, recipient_user_id):
        """Best effort, never blocks the send: a push when the recipient has no socket open."""
        if recipient_user_id is None:
            return
        try:
            if await realtime.has_open_socket(recipient_user_id):
                return
        except Exception:
            logger.warning("new-message push failed", exc_info=True)
            return
        await self._push(stored, recipient_user_id)

    async def _push(self, stored, recipient_user_id):
        """The new-message push to a recipient without an open socket (best effort)."""
        if recipient_user_id is None:
            return
        try:
            session = SimpleNamespace(id=stored.session_id, client_id=stored.client_user_id)
            # Not thread-sensitive: a push may wait on FCM and must not hold the shared thread.
            await database_sync_to_async(notifications.new_message, thread_sensitive=False)(
                session=session, recipient_user_id=recipient_user_id
            )
        except Exception:
            logger.warning("new-message push failed", exc_info=True)

    async def _crisis_followup(self, stored):
        try:
            await database_sync_to_async(handoff.crisis_followup)(session_id=stored.session_id)
        except Exception:
            # The scheduler's crisis_followups job picks it up (crisis_followup_pending).
            logger.exception("crisis follow-up failed", extra={"session_id": stored.session_id})

    async def on_typing(self, frame):
        session_id = _session_id(frame, "typing")
        is_typing = frame.get("is_typing")
        if not isinstance(is_typing, bool):
            _invalid("is_typing", "typing", "harus true/false.")
        participants = await self._participants(session_id, "typing")
        other = participants.other_than(self.user_id)
        if participants.status == "active" and other is not None:
            await self._group_send(
                other,
                {"type": "typing", "session_id": session_id, "user_id": self.user_id, "is_typing": is_typing},
            )

    async def on_read(self, frame):
        session_id = _session_id(frame, "read")
        up_to_seq = _int_field(frame, "up_to_seq", "read")
        try:
            read_seq, participants = await database_sync_to_async(chat_store.session_mark_read)(
                session_id=session_id, user_id=self.user_id, up_to_seq=up_to_seq
            )
        except ServiceError as exc:
            raise FrameError(exc.code, exc.detail, "read") from None
        read_frame = {
            "type": "read",
            "session_id": session_id,
            "user_id": self.user_id,
            "up_to_seq": read_seq,
        }
        other = participants.other_than(self.user_id)
        if other is not None:
            await self._group_send(other, read_frame)

    async def on_sync(self, frame):
        """One session (`session_id`, `after_seq`) or many (`sessions`: a list of those): every
        socket's `sync` of this moment is answered together (sessions_app/socket_batches.py)."""
        if "sessions" in frame:
            wanted = frame["sessions"]
            if not isinstance(wanted, list) or not 1 <= len(wanted) <= SYNC_MAX_SESSIONS:
                _invalid("sessions", "sync", f"daftar 1–{SYNC_MAX_SESSIONS} sesi.")
            if not all(isinstance(item, dict) for item in wanted):
                _invalid("sessions", "sync", "setiap sesi berupa objek.")
            asked = [(_session_id(item, "sync"), _int_field(item, "after_seq", "sync")) for item in wanted]
        else:
            asked = [(_session_id(frame, "sync"), _int_field(frame, "after_seq", "sync"))]
        replies = await asyncio.gather(
            *(
                socket_batches.messages_replay(
                    session_id=session_id, user_id=self.user_id, after_seq=after_seq, limit=SYNC_PAGE
                )
                for session_id, after_seq in asked
            ),
            return_exceptions=True,
        )
        for (session_id, after_seq), reply in zip(asked, replies, strict=True):
            if isinstance(reply, ServiceError):
                await self.send_error(*_unrevealing(reply.code, reply.detail), "sync")
                continue
            if isinstance(reply, BaseException):
                raise reply
            messages, has_more, last_seq = reply
            for message in messages:
                await self.send_json(stored_message.message_frame(message))
            await self.send_json(
                {"type": "sync.done", "session_id": session_id,
                 "last_seq": messages[-1].seq if messages else after_seq, "session_last_seq": last_seq,
                 "has_more": has_more}
            )  # fmt: skip

    async def on_heartbeat(self, frame):
        if self.mitra is not None:
            try:
                at = await database_sync_to_async(mitra_heartbeat)(mitra=self.mitra)
            except ServiceError as exc:
                await self.send_error(exc.code, exc.detail, "heartbeat")
                if exc.code == "mitra_deactivated":
                    await self.close_with(CLOSE_FORCED)
                return
            await self.send_json({"type": "heartbeat.ack", "at": at.isoformat()})
        else:
            await self.send_json({"type": "heartbeat.ack"})

    async def on_ping(self, frame):
        await self.send_json({"type": "pong"})

    HANDLERS = {
        "message.send": on_message_send,
        "typing": on_typing,
        "read": on_read,
        "sync": on_sync,
        "heartbeat": on_heartbeat,
        "ping": on_ping,
    }
