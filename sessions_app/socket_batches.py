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
"""

import asyncio
import logging

from channels.db import database_sync_to_async

from sessions_app import selectors, tickets

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
