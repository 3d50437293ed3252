"""Process-level state of the WebSocket consumers: the sockets open in this process, which users
have a socket open anywhere (for pushes), and the channel-layer watchdog.

Sockets per user: a Valkey sorted set `realtime:sockets:<user_id>` (member: the socket's channel
name, score: when it lapses). A socket adds itself on connect, refreshes on client frames (the
apps ping at least every SOCKET_TTL_SECONDS / 2) and removes itself on disconnect; a crashed
process's entries lapse on their own. Without Valkey (development) a dict in this process. If
Valkey cannot answer, the user counts as having no socket, so a push goes out (best effort).

The watchdog: after a Valkey restart the pub/sub connection of channels_redis may come back
without its subscriptions (channels_redis 4.3 has no reconnect hook of its own; redis-py may
resubscribe by itself), and whatever was published meanwhile is lost either way. So every
WATCHDOG_INTERVAL the process sends a probe to itself through the layer and reads Valkey's
`run_id`; when a probe does not come back, the layer raises, or the run_id changed (a restart
quicker than a probe round), every socket of this process is closed with 1012 and the layer is
flushed. The apps reconnect (to any process),
resubscribe on connect, and `sync` from Postgres: nothing acked is lost.
"""

import asyncio
import logging
import time
import weakref

from channels.layers import get_channel_layer
from django.conf import settings
from redis import asyncio as aioredis

from halobestie.integrations.valkey import key
from halobestie.server.listeners import PUBLIC

logger = logging.getLogger(__name__)

SOCKET_TTL_SECONDS = 120
WATCHDOG_INTERVAL = 1.0
WATCHDOG_TIMEOUT = 3.0
# A busy process can miss one probe deadline without anything being wrong; closing every socket
# then would make all apps reconnect at the worst moment. Only this many slow rounds in a row
# count as a lost layer (a connection error or a Valkey restart counts at once).
WATCHDOG_SLOW_ROUNDS = 3
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

_consumers = weakref.WeakSet()
_local_sockets = {}  # user_id -> {channel_name: lapses_at}, without Valkey
_redis_clients = {}
_watchdogs = {}


def register(consumer):
    _consumers.add(consumer)


def unregister(consumer):
    _consumers.discard(consumer)


def local_consumers():
    return list(_consumers)


# Layer outages seen by new sockets -------------------------------------------------------------

_upgrade_outage = {"is_down": False}


def layer_unavailable_at_upgrade(exc):
    """A socket could not get its channel (Valkey down): it is accepted and closed with 1012.
    Logged once per outage, not once per socket (apps retry every few seconds)."""
    if not _upgrade_outage["is_down"]:
        _upgrade_outage["is_down"] = True
        logger.warning(
            "channel layer unavailable: new sockets are closed with 1012 until it is back",
            extra={"error": type(exc).__name__},
        )


def layer_available_at_upgrade():
    if _upgrade_outage["is_down"]:
        _upgrade_outage["is_down"] = False
        logger.info("channel layer available again for new sockets")


# Sockets per user ------------------------------------------------------------------------------


def _redis(purpose="chat"):
    """This loop's Valkey client for `purpose`: "chat" (the per-message rate and presence keys,
    socket registry) on a blocking pool of REALTIME_VALKEY_CONNECTIONS (a burst waits for a
    connection instead of failing with MaxConnectionsError), "watchdog" on its own connection, so
    that a busy chat pool never reads as a lost layer (issue 22: it closed every socket with 1012
    under load)."""
    loop = asyncio.get_running_loop()
    client = _redis_clients.get((loop, purpose))
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.VALKEY_URL,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            decode_responses=True,
            max_connections=settings.REALTIME_VALKEY_CONNECTIONS if purpose == "chat" else 2,
            timeout=2.0,
        )
        client = aioredis.Redis(connection_pool=pool)
        _redis_clients[(loop, purpose)] = client
    return client


def _sockets_key(user_id):
    return key(f"realtime:sockets:{user_id}")


def sockets_key(user_id):
    """The Valkey key of the user's open sockets (sessions_app.layer reads it with a publish)."""
    return _sockets_key(user_id)


async def socket_opened(user_id, channel_name):
    """Mark (or refresh) the socket as open. Never raises."""
    lapses_at = time.time() + SOCKET_TTL_SECONDS
    if not settings.VALKEY_URL:
        _local_sockets.setdefault(user_id, {})[channel_name] = lapses_at
        return
    try:
        client = _redis()
        async with client.pipeline(transaction=False) as pipe:
            pipe.zadd(_sockets_key(user_id), {channel_name: lapses_at})
            pipe.expire(_sockets_key(user_id), SOCKET_TTL_SECONDS * 2)
            await pipe.execute()
    except Exception:
        logger.warning("socket registry unavailable", exc_info=True)


async def socket_open_count(user_id, channel_name) -> int | None:
    """Mark the socket as open and count the user's open sockets on every process, for the
    per-user cap: one Lua call with every other socket opening or closing at this moment
    (`_registry_batch`). None when Valkey cannot answer (the caller then counts this process's
    sockets only)."""
    now = time.time()
    if not settings.VALKEY_URL:
        sockets = _local_sockets.setdefault(user_id, {})
        sockets[channel_name] = now + SOCKET_TTL_SECONDS
        return sum(1 for lapses_at in sockets.values() if lapses_at > now)
    return await _registry_write("open", user_id, channel_name)


# Registry writes of many sockets at once (issue 22, reconnect storms): a socket opening or closing
# used to take its own round trip and a connection of the REALTIME_VALKEY_CONNECTIONS pool, so
# 2,000 sockets closing together mostly failed with "No connection available" (left to lapse), and
# 2,000 opening queued for the pool. Here every write of a loop turn goes in one Lua call.
REGISTRY_BATCH = 500
_registry_pending = {}  # event loop -> [(operation, user_id, channel_name, future)]
_registry_flushing = {}  # event loop -> its flush task (a reference, so that it is not collected)


async def _registry_write(operation, user_id, channel_name):
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _registry_pending.setdefault(loop, []).append((operation, user_id, channel_name, future))
    if loop not in _registry_flushing:
        _registry_flushing[loop] = loop.create_task(_registry_flush(loop))
    return await future


async def _registry_flush(loop):
    try:
        await asyncio.sleep(0)  # whatever else this loop turn brings joins the batch
        while _registry_pending.get(loop):
            batch = _registry_pending[loop][:REGISTRY_BATCH]
            del _registry_pending[loop][: len(batch)]
            answers = await _registry_batch(
                [(operation, user_id, name) for operation, user_id, name, _ in batch]
            )
            for (*_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
    finally:
        del _registry_flushing[loop]
        if _registry_pending.get(loop):  # arrived while finishing: start again
            _registry_flushing[loop] = loop.create_task(_registry_flush(loop))
        else:
            _registry_pending.pop(loop, None)


# For each write i: KEYS[i] the user's sockets zset; ARGV[1] now, ARGV[2] the TTL, ARGV[2i+1] "open"
# or "close", ARGV[2i+2] the socket's channel name. Returns each "open"'s count of live sockets
# after it (lapsed ones pruned first), -1 for a "close".
_REGISTRY_SCRIPT = """
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local counts = {}
for i, sockets in ipairs(KEYS) do
    local name = ARGV[2 * i + 2]
    if ARGV[2 * i + 1] == 'open' then
        redis.call('ZREMRANGEBYSCORE', sockets, '-inf', now)
        redis.call('ZADD', sockets, now + ttl, name)
        redis.call('EXPIRE', sockets, ttl * 2)
        counts[i] = redis.call('ZCARD', sockets)
    else
        redis.call('ZREM', sockets, name)
        counts[i] = -1
    end
end
return counts
"""
_registry_scripts = weakref.WeakKeyDictionary()  # client -> its registered _REGISTRY_SCRIPT


async def _registry_batch(writes) -> list:
    """("open" | "close", user_id, channel_name) each → the user's open-socket count after an
    "open" (lapsed ones pruned first), None for a "close"; all None when Valkey cannot answer.
    One Lua call for the whole batch (atomic, as the MULTI it replaces): four commands per
    socket in a MULTI cost redis-py far more to pack and parse than Valkey to run (issue 22)."""
    try:
        client = _redis()
        script = _registry_scripts.get(client)
        if script is None:
            script = _registry_scripts[client] = client.register_script(_REGISTRY_SCRIPT)
        args = [repr(time.time()), SOCKET_TTL_SECONDS]
        for operation, _, channel_name in writes:
            args += (operation, channel_name)
        counts = await script(keys=[_sockets_key(user_id) for _, user_id, _ in writes], args=args)
    except Exception as exc:
        _note_valkey_degraded("socket registry", exc)
        return [None] * len(writes)
    return [
        int(count) if operation == "open" else None
        for (operation, _, _), count in zip(writes, counts, strict=True)
    ]


# Token buckets per user in Valkey, shared by the user's sockets on every process: rate per
# second, burst, now (seconds, float); one key per message asking (a user may appear twice).
# Returns 1 (a token was taken) or 0 for each key, in order.
_BUCKET_SCRIPT = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local taken = {}
for i, bucket in ipairs(KEYS) do
    local state = redis.call('HMGET', bucket, 'tokens', 'updated')
    local tokens, updated = tonumber(state[1]), tonumber(state[2])
    if tokens == nil then tokens = burst; updated = now end
    tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
    taken[i] = 0
    if tokens >= 1 then tokens = tokens - 1; taken[i] = 1 end
    redis.call('HSET', bucket, 'tokens', tostring(tokens), 'updated', tostring(now))
    redis.call('EXPIRE', bucket, math.ceil(burst / rate) + 1)
end
return taken
"""


async def user_message_allowed(user_id) -> bool | None:
    """Take one token of the user's message bucket (REALTIME_MESSAGES_PER_SECOND / _BURST),
    shared by all of the user's sockets. None when Valkey cannot answer (or is not configured):
    the caller falls back to the socket's own bucket.

    One Valkey call at a time per process: the messages that ask while it is in flight are
    answered together by the next one (one round trip for all, issue 22); alone, a message
    gets its own call at once, as before."""
    if not settings.VALKEY_URL:
        return None
    loop = asyncio.get_running_loop()
    asking = _bucket_asking.get(loop)
    if asking is None:
        asking = _bucket_asking[loop] = {"pending": [], "running": False}
    future = loop.create_future()
    asking["pending"].append((user_id, future))
    if not asking["running"]:
        asking["running"] = True
        task = loop.create_task(_take_tokens(asking))
        _bucket_tasks.add(task)
        task.add_done_callback(_bucket_tasks.discard)
    return await future


async def _take_tokens(asking):
    try:
        while asking["pending"]:
            batch, asking["pending"] = asking["pending"], []
            try:
                client = _redis()
                script = _bucket_scripts.get(client)
                if script is None:
                    # EVALSHA: the script's text is sent once per client, not with every call.
                    script = _bucket_scripts[client] = client.register_script(_BUCKET_SCRIPT)
                rate, burst = settings.REALTIME_MESSAGES_PER_SECOND, settings.REALTIME_MESSAGES_BURST
                taken = await script(
                    keys=[key(f"realtime:messages:{user_id}") for user_id, _ in batch],
                    args=[rate, burst, time.time()],
                )
                answers = [bool(t) for t in taken]
            except Exception as exc:
                _note_valkey_degraded("message rate", exc)
                answers = [None] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
    finally:
        asking["running"] = False  # no await since `pending` was found empty


_bucket_asking = weakref.WeakKeyDictionary()  # loop -> {"pending": [(user_id, future)], "running"}
_bucket_tasks = set()
_bucket_scripts = weakref.WeakKeyDictionary()
_degraded_logged = {}


def _note_valkey_degraded(what, exc):
    """Log a per-socket fallback at most once a minute per kind (never once per frame)."""
    now = time.monotonic()
    if now - _degraded_logged.get(what, -1e9) > 60:
        _degraded_logged[what] = now
        logger.warning(f"valkey unavailable: {what} per socket/process", extra={"error": type(exc).__name__})


async def socket_closed(user_id, channel_name):
    """Never raises; batched with every other socket opening or closing now (a failure is logged
    once a minute: the entry lapses on its own)."""
    if not settings.VALKEY_URL:
        _local_sockets.get(user_id, {}).pop(channel_name, None)
        return
    await _registry_write("close", user_id, channel_name)


async def has_open_socket(user_id) -> bool:
    """Does the user have a live socket on any process? False when unsure (push then)."""
    now = time.time()
    if not settings.VALKEY_URL:
        return any(lapses_at > now for lapses_at in _local_sockets.get(user_id, {}).values())
    try:
        client = _redis()
        async with client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(_sockets_key(user_id), "-inf", now)
            pipe.zcard(_sockets_key(user_id))
            _, count = await pipe.execute()
        return count > 0
    except Exception:
        logger.warning("socket registry unavailable", exc_info=True)
        return False


# Overload --------------------------------------------------------------------------------------

LAG_SAMPLE_SECONDS = 0.1
_lag = {}  # loop -> [lag of the last sample (s), of the one before]
_lag_monitors = {}


def overloaded(store_wait: float = 0.0) -> bool:
    """Is this process so far behind that a new chat message should be refused (`overloaded`,
    not stored, not acked: the app resends) rather than queued behind the backlog? Yes when the
    oldest sender has waited `store_wait` seconds for a database connection, or the event loop
    lagged, past REALTIME_OVERLOAD_MS (the lag: two samples in a row). Refusing costs a fraction
    of storing and delivering, so the process sheds load instead of letting every latency grow
    without bound (issue 22)."""
    limit = settings.REALTIME_OVERLOAD_MS / 1000
    if store_wait > limit:
        return True
    samples = _lag.get(asyncio.get_running_loop())
    return samples is not None and samples[0] > limit and samples[1] > limit


def _loop_starved() -> bool:
    """Did this loop lag more than half a probe timeout in either of its last two samples?"""
    samples = _lag.get(asyncio.get_running_loop())
    return samples is not None and max(samples) > WATCHDOG_TIMEOUT / 2


def _layer_delivering(layer) -> bool:
    receiving_since = getattr(layer, "receiving_since", None)
    return receiving_since is not None and receiving_since(WATCHDOG_TIMEOUT)


def ensure_lag_monitor():
    loop = asyncio.get_running_loop()
    task = _lag_monitors.get(loop)
    if task is None or task.done():
        _lag_monitors[loop] = loop.create_task(_monitor_lag(), name="realtime-lag-monitor")


async def _monitor_lag():
    loop = asyncio.get_running_loop()
    samples = _lag.setdefault(loop, [0.0, 0.0])
    try:
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            samples[1], samples[0] = samples[0], max(0.0, loop.time() - started - LAG_SAMPLE_SECONDS)
    finally:
        _lag.pop(loop, None)


# Watchdog --------------------------------------------------------------------------------------


def _uses_redis_layer():
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
    return "channels_redis" in backend or backend == "sessions_app.layer.UserGroupLayer"


async def on_server_start(listener):
    """Lifespan hook: the public listener watches its layer from the start."""
    if listener == PUBLIC:
        ensure_watchdog()


def ensure_watchdog():
    """Start this loop's watchdog once (at server start, or the first socket of the process),
    and its lag monitor (`overloaded`)."""
    ensure_lag_monitor()
    if not _uses_redis_layer():
        return
    loop = asyncio.get_running_loop()
    task = _watchdogs.get(loop)
    if task is None or task.done():
        _watchdogs[loop] = loop.create_task(_watch(), name="realtime-layer-watchdog")


async def close_all_local(code=CLOSE_SERVICE_RESTART):
    """Close every socket of this process with `code` (the apps reconnect and sync)."""
    consumers = local_consumers()
    for consumer in consumers:
        try:
            await consumer.close_with(code)
        except Exception:
            logger.warning("closing a socket failed", exc_info=True)
    return len(consumers)


class LayerRestarted(Exception):
    """Valkey restarted since the last probe round."""


async def _watch():
    layer = get_channel_layer()
    group = f"realtime.watchdog.{id(asyncio.get_running_loop())}.{time.time_ns()}"
    channel = None
    counter = 0
    healthy = True
    last_run_id = None
    slow_rounds = 0
    while True:
        if counter:
            await asyncio.sleep(WATCHDOG_INTERVAL)
        counter += 1
        try:
            # The whole round is bounded: redis-py retries a dead server with back-off, which
            # can take far longer than the outage we want to notice.
            async with asyncio.timeout(WATCHDOG_TIMEOUT):
                # A restart shorter than a probe round goes unnoticed by the probe (redis-py
                # reconnects and resubscribes) but loses what was published meanwhile: the
                # server's run_id tells.
                run_id = (await _redis("watchdog").info("server")).get("run_id")
                if last_run_id is not None and run_id != last_run_id:
                    last_run_id = run_id
                    raise LayerRestarted()
                last_run_id = run_id
                if channel is None:
                    channel = await layer.new_channel("watchdog.")
                    await layer.group_add(group, channel)
                await layer.group_send(group, {"type": "probe", "n": counter})
                while True:
                    message = await layer.receive(channel)
                    if message.get("n") == counter:
                        break
            if not healthy:
                logger.info("channel layer back")
            healthy = True
            slow_rounds = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and healthy and (_loop_starved() or _layer_delivering(layer)):
                # The probe is late because this process is (or the machine's CPUs are) behind, not
                # because the layer is lost: closing every socket now would add a reconnect storm
                # to the overload (issue 22). A dead connection raises, a restart changes run_id.
                # Likewise when the layer's subscriber connection keeps delivering frames: the
                # probe is queued behind them (a backlog), the subscriptions are alive.
                logger.info("channel layer probe late while the process lags or the layer is busy")
                continue
            if isinstance(exc, TimeoutError) and healthy:
                slow_rounds += 1
                if slow_rounds < WATCHDOG_SLOW_ROUNDS:
                    logger.info("channel layer probe slow", extra={"slow_rounds": slow_rounds})
                    continue
            slow_rounds = 0
            # Closing and flushing once per outage is enough; while the layer is still down new
            # sockets are refused at connect (group_add fails) and the probe keeps failing.
            closed = await close_all_local() if healthy or local_consumers() else 0
            if healthy or closed:
                logger.warning(
                    "channel layer lost: sockets closed for reconnect",
                    extra={"sockets_closed": closed, "error": type(exc).__name__},
                )
            healthy = False
            channel = None
            # Handled: the sockets that connect from now on subscribe on whatever server answers,
            # so its (new) run_id is not another restart to close them for.
            last_run_id = None
            try:
                await layer.flush()
            except Exception:
                logger.warning("channel layer flush failed", exc_info=True)
