"""The channel layer of the chat sockets: channels_redis' pub/sub layer, tuned for one group per
user (issue 22, "chat past the relay"). settings.CHANNEL_LAYERS names it when Valkey is set.

What it changes, and why (measured with bench/chat_bench.py):

- **Publishing is not serialised.** channels_redis publishes under the shard's one asyncio lock,
  so a process has at most one PUBLISH in flight: every sender queues behind every other
  sender's round trip. Here publishes run concurrently on a bounded, blocking connection pool
  (REALTIME_VALKEY_CONNECTIONS; a burst waits for a connection however long it takes, as frames
  queued behind channels_redis' lock did: a timeout would drop them, e.g. the queue.position
  frames of a 500-session dispatch; a Valkey that stops answering is the watchdog's to handle,
  closing sockets with 1012). Subscribing keeps channels_redis' lock (it must not race with flush()).
- **One round trip per chat message** (`publish_message`): the message frame is serialised once
  and published to both participants' groups, and the recipient's live-socket count is read
  (for the push when they have none), all in one Lua call; the messages published while that
  call is in flight share the next one (redis-py's per-call cost, not Valkey, was most of it).
- **Bounded queues.** Each socket's queue holds at most REALTIME_SOCKET_QUEUE frames. A socket
  whose consumer falls that far behind is not fed more and more memory: the frame is dropped and
  the socket's overflow callback runs (the consumer closes it with 1013, try again later); the
  app reconnects and `sync`s from Postgres, where every acknowledged message already is.
- **A chat socket holds no queue and no subscription of its own** (`attach`): its channel is
  local to the process (nothing sends to a socket's own channel; everything goes to the user's
  group), and what arrives for it is handed to the consumer's callback at once, which queues it
  only while the consumer is busy (sessions_app/consumers.py). An idle socket then costs no
  asyncio.Queue, no reader task and no Valkey SUBSCRIBE (issue 22: idle memory, reconnect storms).
- **Receiving reads the socket, not one reply per call** (`UserGroupShard._do_receiving`): each
  read of the subscriber connection is parsed at once (sessions_app/replies.py) and every frame
  it completes is delivered before the next read, without channels_redis' per-frame
  `get_message` (a timeout context, redis-py's retry wrapper and generic parser, a dict): the
  receiving CPU per frame fell from ≈ 28 to ≈ 3.5 µs in a burst, and from ≈ 62 to ≈ 20 µs at
  2,000 frames/s arriving ten at a time, where the event loop's wake-up per read is most of it.
"""

import asyncio
import logging
import time
import uuid

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import InvalidResponse, ResponseError

from sessions_app.replies import Replies

logger = logging.getLogger(__name__)
_publishing = set()  # the tasks publishing waiting chat messages (a reference until done)
_READ_SIZE = 1 << 18  # at most this many bytes per read of the subscriber connection

# For each message i (one or many): KEYS 3i-2, 3i-1, 3i: group channel A, group channel B (may be
# empty), the recipient's sockets zset (may be empty); ARGV[1]: now, ARGV[i + 1]: its payload.
# PUBLISH to each group; for each message the recipient's live sockets (lapsed ones pruned first),
# -1 without a recipient.
_PUBLISH_SCRIPT = """
local counts = {}
for i = 1, #ARGV - 1 do
    local payload = ARGV[i + 1]
    redis.call('PUBLISH', KEYS[3 * i - 2], payload)
    if KEYS[3 * i - 1] ~= '' then redis.call('PUBLISH', KEYS[3 * i - 1], payload) end
    local presence = KEYS[3 * i]
    if presence == '' then
        counts[i] = -1
    else
        redis.call('ZREMRANGEBYSCORE', presence, '-inf', ARGV[1])
        counts[i] = redis.call('ZCARD', presence)
    end
end
return counts
"""


class _Attached:
    """In place of a channel's queue: `callback(data)` takes each frame as it arrives."""

    __slots__ = ("callback",)

    def __init__(self, callback):
        self.callback = callback


class UserGroupShard(RedisSingleShardConnection):
    def __init__(self, host, channel_layer):
        super().__init__(host, channel_layer)
        self._publisher = None
        self._publish_script = None
        self._messages_waiting = []  # (keys, payload, future) for the next Lua call
        self._messages_publishing = False
        self._pending = []  # [(operation, channel, future)] in arrival order
        self._flushing = False
        self._flush_task = None  # a reference, so that the running task is not collected

    # Subscriptions of a storm in a few commands (issue 22): channels_redis sends one SUBSCRIBE per
    # group_add and one UNSUBSCRIBE per emptied group, one at a time under the shard's lock, so
    # 1,000 sockets (re)connecting queued 1,000 lock hand-offs on a busy loop and timed out. Here
    # what arrives in one loop turn goes out as one SUBSCRIBE / UNSUBSCRIBE per run of the same
    # operation, in arrival order and with the same checks as channels_redis, under the lock.
    async def subscribe(self, channel):
        await self._queue_operation("subscribe", channel)

    async def unsubscribe(self, channel):
        await self._queue_operation("unsubscribe", channel)

    async def _queue_operation(self, operation, channel):
        future = asyncio.get_running_loop().create_future()
        self._pending.append((operation, channel, future))
        if not self._flushing:
            self._flushing = True
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_operations())
        await future

    async def _flush_operations(self):
        try:
            await asyncio.sleep(0)  # whatever else this loop turn brings joins
            while self._pending:
                batch, self._pending = self._pending, []
                async with self._lock:
                    for operation, run in _runs(batch):
                        try:
                            await self._apply(operation, [channel for _, channel, _ in run])
                        except Exception as exc:
                            for *_, future in run:
                                if not future.done():
                                    future.set_exception(exc)
                        else:
                            for *_, future in run:
                                if not future.done():
                                    future.set_result(None)
        finally:
            self._flushing = False
            if self._pending:
                self._flushing = True
                self._flush_task = asyncio.get_running_loop().create_task(self._flush_operations())

    async def _apply(self, operation, channels):
        self._ensure_redis()
        self._ensure_receiver()
        if operation == "subscribe":
            wanted = list(dict.fromkeys(c for c in channels if c not in self._subscribed_to))
            if wanted:
                await self._pubsub.subscribe(*wanted)
                self._subscribed_to.update(wanted)
        else:
            wanted = list(dict.fromkeys(c for c in channels if c in self._subscribed_to))
            if wanted:
                await self._pubsub.unsubscribe(*wanted)
                self._subscribed_to.difference_update(wanted)

    def publisher(self):
        """A client for publishing, on its own blocking pool (not the subscriber's connection)."""
        if self._publisher is None:
            host = dict(self.host)
            address = host.pop("address", None)
            max_connections = getattr(settings, "REALTIME_VALKEY_CONNECTIONS", 32)
            if address is not None:
                pool = aioredis.BlockingConnectionPool.from_url(
                    address, max_connections=max_connections, timeout=None, **host
                )
            else:
                pool = aioredis.BlockingConnectionPool(max_connections=max_connections, timeout=None, **host)
            self._publisher = aioredis.Redis(connection_pool=pool)
            self._publish_script = self._publisher.register_script(_PUBLISH_SCRIPT)
        return self._publisher

    async def publish(self, channel, message):
        await self.publisher().publish(channel, message)

    async def publish_message(self, keys, payload):
        """Publish one chat message (`keys`: its three keys); its recipient's socket count. One
        Lua call at a time per process: the messages published while it is in flight go together
        in the next one (one round trip for all, issue 22); alone, a message gets its call at once."""
        future = asyncio.get_running_loop().create_future()
        self._messages_waiting.append((keys, payload, future))
        if not self._messages_publishing:
            self._messages_publishing = True
            task = asyncio.get_running_loop().create_task(self._publish_waiting())
            _publishing.add(task)
            task.add_done_callback(_publishing.discard)
        return await future

    async def _publish_waiting(self):
        try:
            while self._messages_waiting:
                batch, self._messages_waiting = self._messages_waiting, []
                try:
                    self.publisher()
                    keys = [key for keys, _, _ in batch for key in keys]
                    args = [time.time()] + [payload for _, payload, _ in batch]
                    counts = await self._publish_script(keys=keys, args=args)
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), count in zip(batch, counts, strict=True):
                    if not future.done():
                        future.set_result(count)
        finally:
            self._messages_publishing = False  # no await since the waiting list was found empty

    async def flush(self):
        await super().flush()
        publisher, self._publisher, self._publish_script = self._publisher, None, None
        if publisher is not None:
            try:
                await publisher.aclose(close_connection_pool=True)
            except Exception:
                logger.warning("closing the publisher failed", exc_info=True)

    # Receiving (issue 22): channels_redis awaits `PubSub.get_message(timeout=0.1)` once per
    # frame, and each call pays a timeout context, redis-py's retry wrapper, its generic parser
    # and a message dict: ≈ 10 % of a process's CPU at 1,000 chat messages/s (each is received
    # twice, in the sender's and the recipient's group). Here one socket read of the subscriber
    # connection is parsed at once (sessions_app/replies.py) and every frame it completes is
    # delivered before the next read; the rest is redis-py's as before: SUBSCRIBE/UNSUBSCRIBE
    # sent by PubSub under the shard's lock, their confirmations handed to PubSub.handle_message
    # (which forgets an unsubscribed channel), and reconnecting through PubSub.connect(), which
    # re-subscribes every channel (PubSub.on_connect).
    async def _do_receiving(self):
        reader = None  # the StreamReader of the connection being read
        replies = None
        failures = 0
        while True:
            try:
                pubsub = self._pubsub
                if pubsub is None or not pubsub.subscribed:
                    await asyncio.sleep(0.1)  # nothing to read (as channels_redis): no spinning
                    continue
                connection = pubsub.connection
                if connection is None or not connection.is_connected:
                    await self._reconnect(pubsub)
                    continue
                # redis-py's asyncio.StreamReader of the connection (private: redis is pinned,
                # tests/realtime/test_layer_receiving.py would fail on a change). After the
                # handshake nothing else reads it: PubSub only sends on a subscribed connection.
                if connection._reader is not reader:  # a new connection: its own bytes
                    reader, replies = connection._reader, Replies()
                try:
                    chunk = await reader.read(_READ_SIZE)
                except OSError:
                    chunk = b""
                if not chunk:  # closed by the server (restarted, CLIENT KILL) or reset
                    if connection._reader is reader:
                        await connection.disconnect(nowait=True)
                    continue
                try:
                    received = replies.feed(chunk)
                except (InvalidResponse, ValueError):
                    if connection._reader is reader:
                        await connection.disconnect(nowait=True)  # its bytes make no sense
                    raise
                await self._deliver_all(pubsub, received)
                failures = 0
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                failures += 1
                # Once per outage with its traceback, then one line a second.
                logger.warning(
                    "subscriber connection failed",
                    exc_info=failures == 1,
                    extra={"error": type(exc).__name__, "failures": failures},
                )
                await asyncio.sleep(1)

    async def _reconnect(self, pubsub):
        """Reconnect the subscriber connection (redis-py re-subscribes every channel), under
        the lock: subscribe, ensure_subscriber and flush also connect, and two connects at
        once would open two sockets."""
        async with self._lock:
            if self._pubsub is pubsub and pubsub.subscribed:
                await pubsub.connect()

    async def _deliver_all(self, pubsub, received):
        """Deliver the frames of `received` (Replies.feed), in order; hand the other replies to
        redis-py's PubSub. A failing delivery is logged and the next frame delivered."""
        layer = self.channel_layer
        channels = layer.channels
        groups = layer.groups
        delivered = False
        for reply in received:
            if type(reply) is tuple:
                name, data = reply
                name = name.decode()
                try:
                    if name in channels:
                        layer.deliver(name, data)
                    else:
                        for channel_name in groups.get(name, ()):
                            layer.deliver(channel_name, data)
                except Exception:
                    logger.warning("delivering a frame failed", exc_info=True)
                delivered = True
            elif isinstance(reply, list) and reply:
                # subscribe/unsubscribe confirmations (an unsubscribed channel is forgotten
                # there), a message in an unusual shape
                try:
                    self._receive_message(await pubsub.handle_message(reply, ignore_subscribe_messages=True))
                except Exception:
                    logger.warning("delivering a frame failed", exc_info=True)
            elif isinstance(reply, ResponseError):
                logger.warning("subscriber connection error reply", extra={"error": str(reply)})
        if delivered:
            layer.last_received = time.monotonic()

    def _receive_message(self, message):
        if message is None:
            return
        self.channel_layer.last_received = time.monotonic()
        name = message["channel"]
        data = message["data"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        if name in layer.channels:
            layer.deliver(name, data)
        else:
            for channel_name in layer.groups.get(name, ()):
                layer.deliver(channel_name, data)


def _runs(batch):
    """[(operation, channel, future)] → [(operation, [items])], consecutive same operations together."""
    runs = []
    for item in batch:
        if runs and runs[-1][0] == item[0]:
            runs[-1][1].append(item)
        else:
            runs.append((item[0], [item]))
    return runs


class UserGroupLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, queue_size=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue_size = queue_size
        self._shards = [UserGroupShard(shard.host, self) for shard in self._shards]
        self.overflow_callbacks = {}
        self.last_received = 0.0  # monotonic: when the subscriber connection last brought a frame

    def receiving_since(self, seconds) -> bool:
        """Has the subscriber connection brought anything in the last `seconds`? (The watchdog:
        a late probe on a connection that delivers is a backlog, not a lost layer.)"""
        return time.monotonic() - self.last_received < seconds

    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = asyncio.Queue(maxsize=self._queue_size())
        await self._get_shard(channel).subscribe(channel)

    def _queue_size(self):
        if self.queue_size is not None:
            return self.queue_size
        return getattr(settings, "REALTIME_SOCKET_QUEUE", 0)

    def attach(self, callback, prefix="specific."):
        """A new channel, local to this process, whose frames go to `callback(data)` (serialised
        data: `deserialize` it), with no Valkey round trip; it can join groups. `detach` ends it."""
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        self.channels[channel] = _Attached(callback)
        return channel

    def detach(self, channel):
        if type(self.channels.get(channel)) is _Attached:
            del self.channels[channel]

    async def ensure_subscriber(self):
        """Raises when the subscriber connection is down and cannot be opened (Valkey down); no
        round trip while it is up (a socket is refused before its authentication, as when
        `new_channel`'s SUBSCRIBE failed)."""
        for shard in self._shards:
            pubsub = shard._pubsub
            if pubsub is not None and pubsub.connection is not None and pubsub.connection.is_connected:
                continue  # up: no lock, no round trip (a storm would queue on the lock)
            async with shard._lock:
                shard._ensure_redis()
                shard._ensure_receiver()
                await shard._pubsub.connect()

    def deliver(self, channel_name, data):
        queue = self.channels.get(channel_name)
        if queue is None:
            return
        if type(queue) is _Attached:
            try:
                queue.callback(data)
            except Exception:
                logger.warning("delivery callback failed", exc_info=True)
            return
        try:
            queue.put_nowait(data)
        except asyncio.QueueFull:
            callback = self.overflow_callbacks.pop(channel_name, None)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    logger.warning("overflow callback failed", exc_info=True)

    def on_overflow(self, channel_name, callback):
        """Call `callback()` (once) when a frame for `channel_name` finds its queue full."""
        self.overflow_callbacks[channel_name] = callback

    async def receive(self, channel):
        try:
            return await super().receive(channel)
        except BaseException:
            if channel not in self.channels:  # the consumer is gone (channels_redis cleaned up)
                self.overflow_callbacks.pop(channel, None)
            raise

    async def group_discard(self, group, channel):
        self.overflow_callbacks.pop(channel, None)
        await super().group_discard(group, channel)

    async def publish_message(self, message, groups, presence_key=""):
        """Publish `message` to one or two groups in one round trip; returns the live-socket
        count under `presence_key` (-1 without one)."""
        channels = [self._get_group_channel_name(group) for group in groups]
        payload = self.channel_layer.serialize(message)
        shard = self._get_shard(channels[0])
        if len(channels) == 2 and self._get_shard(channels[1]) is not shard:
            # Several Valkey hosts (never in our settings): one publish per shard.
            await self._get_shard(channels[1]).publish(channels[1], payload)
            channels.pop()
        if len(channels) == 1:
            channels.append("")
        return await shard.publish_message([channels[0], channels[1], presence_key], payload)

    async def group_send_many(self, messages):
        """[(group, message)]: each message to its group, in order, in one pipelined round trip
        per shard (issue 22: a dispatch's frames and a queue broadcast are not one PUBLISH each)."""
        by_shard = {}
        for group, message in messages:
            channel = self._get_group_channel_name(group)
            payload = self.channel_layer.serialize(message)
            by_shard.setdefault(self._get_shard(channel), []).append((channel, payload))
        for shard, publishes in by_shard.items():
            pipe = shard.publisher().pipeline(transaction=False)
            for channel, payload in publishes:
                pipe.publish(channel, payload)
            await pipe.execute()

    async def flush(self):
        self.overflow_callbacks = {}
        await super().flush()


class UserGroupLayer(RedisPubSubChannelLayer):
    """The layer for settings.CHANNEL_LAYERS; `hosts` must be VALKEY_URL (one host): the
    presence key read in `publish_message` lives there."""

    async def publish_message(self, message, groups, presence_key=""):
        return await self._get_layer().publish_message(message, groups, presence_key)

    async def group_send_many(self, messages):
        await self._get_layer().group_send_many(messages)

    def on_overflow(self, channel_name, callback):
        self._get_layer().on_overflow(channel_name, callback)

    def attach(self, callback):
        return self._get_layer().attach(callback)

    def detach(self, channel):
        self._get_layer().detach(channel)

    async def ensure_subscriber(self):
        await self._get_layer().ensure_subscriber()

    def receiving_since(self, seconds) -> bool:
        return self._get_layer().receiving_since(seconds)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            pass
        from channels_redis.utils import _wrap_close

        layer = UserGroupLoopLayer(*self._args, **self._kwargs, channel_layer=self)
        self._layers[loop] = layer
        _wrap_close(self, loop)
        return layer
