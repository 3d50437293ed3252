"""Live events to the apps, sent after commit and off the request path.

Each user's sockets join the channel-layer group `user.<id>`; a frame sent here reaches every
socket of that user on any server process (Valkey pub/sub). The layer may lose a frame: the apps
resync from REST / `sync`, so a failed send is logged and dropped, never raised to the caller.
"""

import asyncio
import logging
import threading

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

FORCE_CLOSE_TIMEOUT_SECONDS = 5.0
_loop = None
_loop_lock = threading.Lock()


def user_group(user_id) -> str:
    return f"user.{user_id}"


def bind_loop(loop):
    """Send from this event loop (the ASGI server's, so the in-memory layer works in dev)."""
    global _loop
    _loop = loop


def _sending_loop():
    global _loop
    if _loop is not None and not _loop.is_closed():
        return _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-sender", daemon=True).start()
            _loop = loop
    return _loop


async def _group_send_all(user_ids, frame):
    layer = get_channel_layer()
    for user_id in user_ids:
        try:
            await layer.group_send(user_group(user_id), {"type": "deliver.frame", "frame": frame})
        except Exception:
            logger.warning("event not delivered", extra={"event_type": frame.get("type")}, exc_info=True)


_last_in_line = {}  # line → the task of its latest send_many (touched on the sending loop only)


SEND_MANY_CHUNK = 500  # frames per pipelined publish


async def _send_all(sends, previous=None):
    if previous is not None:
        await asyncio.wait([previous])  # the frames of one line go out in the order sent
    layer = get_channel_layer()
    group_send_many = getattr(layer, "group_send_many", None)
    if group_send_many is None:  # a layer without it (the in-memory one): one group_send each
        await asyncio.gather(*(_group_send_all(user_ids, frame) for user_ids, frame in sends))
        return
    messages = [
        (user_group(user_id), {"type": "deliver.frame", "frame": frame})
        for user_ids, frame in sends
        for user_id in user_ids
    ]
    for start in range(0, len(messages), SEND_MANY_CHUNK):
        chunk = messages[start : start + SEND_MANY_CHUNK]
        try:
            await group_send_many(chunk)  # one round trip, in order (sessions_app/layer.py)
        except Exception:
            logger.warning("events not delivered", extra={"event_count": len(chunk)}, exc_info=True)


def _send_in_line(sends, line):
    previous = _last_in_line.get(line) if line is not None else None
    task = asyncio.ensure_future(_send_all(sends, previous))
    if line is not None:
        _last_in_line[line] = task

        def forget(done):
            if _last_in_line.get(line) is done:
                del _last_in_line[line]

        task.add_done_callback(forget)


def send_now(user_ids, frame):
    """Fire-and-forget send of `frame` to every socket of the given users."""
    user_ids = [uid for uid in user_ids if uid is not None]
    if not user_ids:
        return
    _schedule(_group_send_all(user_ids, frame))


def send_many(sends, *, line=None):
    """Fire-and-forget: each (user_ids, frame) of `sends`, handed to the sending loop at once (one
    wake-up of its thread for a whole broadcast, not one per frame) and published in order in one
    pipelined round trip per SEND_MANY_CHUNK frames (the layer's `group_send_many`).
    Broadcasts of the same `line` (e.g. "queue.position") go out one after the other, in the order
    of the calls: a later broadcast's frame never overtakes an earlier one's."""
    sends = [([uid for uid in user_ids if uid is not None], frame) for user_ids, frame in sends]
    sends = [(user_ids, frame) for user_ids, frame in sends if user_ids]
    if not sends:
        return
    loop = _sending_loop()
    if _running_loop() is loop:
        _send_in_line(sends, line)
    else:
        loop.call_soon_threadsafe(_send_in_line, sends, line)


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _schedule(coroutine):
    loop = _sending_loop()
    if _running_loop() is loop:
        loop.create_task(coroutine)
    else:
        asyncio.run_coroutine_threadsafe(coroutine, loop)


def send_on_commit(user_ids, frame):
    """Send after the current transaction commits (at once outside a transaction)."""
    user_ids = list(user_ids)
    transaction.on_commit(lambda: send_now(user_ids, frame))


def close_user_sockets(user_id):
    """Close every socket of the user on every server process with 4003 (the control center
    calls this when it deactivates a mitra). Returns once the send went out (at most
    FORCE_CLOSE_TIMEOUT_SECONDS), except when called on the sending loop itself."""
    if user_id is None:
        return

    async def send():
        try:
            await get_channel_layer().group_send(user_group(user_id), {"type": "force.close"})
        except Exception:
            logger.warning("force close not delivered", exc_info=True)

    loop = _sending_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(send())
        return
    # Waited for: from a one-off process (`manage.py shell`, a job) a fire-and-forget send is
    # lost when the process exits right after. (Sockets also re-check their account every
    # REALTIME_USER_RECHECK_SECONDS, should this send be lost anyway.)
    try:
        asyncio.run_coroutine_threadsafe(send(), loop).result(timeout=FORCE_CLOSE_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("force close not confirmed", exc_info=True)
