"""Reconnect storms (issue 22): what thousands of sockets ask at once, answered in a few queries.

When a server restarts or Valkey fails over, every socket is closed with 1012 and every app
reconnects at once, authenticates and sends `sync`. Per socket that used to be a thread hop and
three or four queries for the authentication and as many for each `sync`, all queued on the
process's one thread-sensitive executor. Here the socket's access token is verified in memory
(signature, expiry, claims: `tickets.socket_bearer_claims`); what only the database knows (the
account still active, not deleted, a mitra not deactivated, the token not revoked) and the `sync`
replies are asked of Postgres for every socket waiting at that moment together: one thread hop and
two queries per batch, whatever the number of sockets in it.

Batching, not caching: every connect and every `sync` still reads the committed state of the
account, the deny list and the messages, so a deactivated account or a revoked token is refused
exactly as before (also while Valkey is down: nothing here reads Valkey). A batch starts as soon
as the loop is free and takes whatever arrived meanwhile; while one batch is in the database the
next one gathers, so a lone connect waits for no one and a storm costs a few dozen queries.

The periodic re-check of open sockets (is the account still allowed, the token not revoked?) is
one task per process too, not one per socket: every REALTIME_USER_RECHECK_SECONDS it asks about
all of this process's sockets in one hop (two queries per MAX_BATCH sockets) and closes the
refused ones as before (`error` frame, then 4003 for a deactivated mitra, else 4001).
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app import realtime, selectors, tickets

logger = logging.getLogger(__name__)

MAX_BATCH = 500


class Batcher:
    """`await batcher.ask(key)` → the answer for `key`, computed with others by
    `many(keys) -> answers` (same order; an answer that is an exception is raised) in one hop."""

    def __init__(self, many):
        self.many = many
        self.pending = {}  # event loop -> [(key, future)]
        self.running = set()  # event loops with a flush task

    async def ask(self, key):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.setdefault(loop, []).append((key, future))
        if loop not in self.running:
            self.running.add(loop)
            loop.create_task(self._flush(loop))
        answer = await future
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def _flush(self, loop):
        try:
            await asyncio.sleep(0)  # whatever else this loop turn brings joins the batch
            while self.pending.get(loop):
                batch = self.pending[loop][:MAX_BATCH]
                del self.pending[loop][: len(batch)]
                try:
                    answers = await database_sync_to_async(self.many)([key for key, _ in batch])
                except Exception as exc:
                    answers = [exc] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self.running.discard(loop)
            if self.pending.get(loop):  # arrived while finishing: start again
                self.running.add(loop)
                loop.create_task(self._flush(loop))
            else:
                self.pending.pop(loop, None)


_users = Batcher(tickets.socket_users_for_claims)
_replays = Batcher(selectors.messages_replay_many)


async def socket_user_for_claims(claims):
    """The user for verified token claims (user_id, role, jti), or raises SocketUnauthenticated."""
    return await _users.ask(claims)


async def messages_replay(*, session_id, user_id, after_seq, limit):
    """`selectors.messages_replay`, batched with every other socket's `sync` of this moment."""
    return await _replays.ask((user_id, session_id, after_seq, limit))


# The process-wide re-check of open sockets -----------------------------------------------------

_rechecks = {}  # event loop -> its re-check task


def ensure_recheck():
    """Start this loop's re-check task once (the first socket of the process starts it)."""
    if settings.REALTIME_USER_RECHECK_SECONDS <= 0:
        return
    loop = asyncio.get_running_loop()
    task = _rechecks.get(loop)
    if task is None or task.done():
        _rechecks[loop] = loop.create_task(_recheck_periodically(), name="realtime-socket-recheck")


async def _recheck_periodically():
    """A missed force-close (a process that died before sending it) closes the socket here at the
    latest, within REALTIME_USER_RECHECK_SECONDS."""
    while True:
        await asyncio.sleep(settings.REALTIME_USER_RECHECK_SECONDS)
        try:
            await recheck_open_sockets()
        except Exception:
            logger.warning("socket user re-check failed", exc_info=True)


async def recheck_open_sockets() -> int:
    """Re-check every open socket of this process; the refused ones are closed
    (`consumer.close_refused`). Returns how many were refused."""
    sockets = [
        c for c in realtime.local_consumers() if c.user_id is not None and not getattr(c, "closing", False)
    ]
    refused = 0
    for start in range(0, len(sockets), MAX_BATCH):
        batch = sockets[start : start + MAX_BATCH]
        refusals = await database_sync_to_async(tickets.socket_users_recheck)(
            [(c.user_id, c.token_jti) for c in batch]
        )
        closing = [c.close_refused(r) for c, r in zip(batch, refusals, strict=True) if r is not None]
        refused += len(closing)
        for outcome in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.warning("closing a refused socket failed", exc_info=outcome)
    return refused
