"""The channel layer's receive loop (sessions_app/layer.py `UserGroupShard._do_receiving`, issue
22): frames in order and complete through bursts, subscriptions changing while frames flow, a
killed subscriber connection and a restarted Valkey, no spinning when idle, clean cancellation.
Real Valkey throughout; a throwaway server where a connection is killed or the server restarted."""

import asyncio
import logging
import time
import traceback
import uuid

import pytest
from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import InvalidResponse

from sessions_app.layer import UserGroupLayer
from sessions_app.replies import Replies


def _layer(url=None):
    return UserGroupLayer(
        hosts=[url or settings.VALKEY_URL], prefix=f"{settings.CHANNEL_LAYER_PREFIX}-{uuid.uuid4().hex[:8]}"
    )


def _attach(layer, received, key):
    """An attached channel whose frames (their "n") go to received[key]."""
    return layer.attach(lambda data: received.setdefault(key, []).append(layer.deserialize(data)["n"]))


async def _publish(client, layer, sends):
    """[(group, n)] published in one pipeline, in order."""
    pipe = client.pipeline(transaction=False)
    for group, number in sends:
        pipe.publish(
            layer._get_layer()._get_group_channel_name(group), layer.serialize({"type": "t", "n": number})
        )
    await pipe.execute()


async def _wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _shard(layer):
    return layer._get_layer()._shards[0]


def test_it_delivers_frames_across_groups_complete_and_in_order():
    async def scenario():
        layer = _layer()
        client = aioredis.Redis.from_url(settings.VALKEY_URL)
        received = {}
        for group in range(50):
            await layer.group_add(f"user.{group}", _attach(layer, received, group))
        both = _attach(layer, received, "both")  # one socket in two groups
        await layer.group_add("user.0", both)
        await layer.group_add("user.1", both)
        sends = [(f"user.{number % 50}", number) for number in range(5000)]
        for start in range(0, len(sends), 250):
            await _publish(client, layer, sends[start : start + 250])
        await _wait_for(lambda: sum(len(frames) for frames in received.values()) >= 5000 + 200)
        await layer.flush()
        await client.aclose()
        return received

    received = asyncio.run(scenario())
    for group in range(50):
        assert received[group] == list(range(group, 5000, 50))
    assert received["both"] == [number for number in range(5000) if number % 50 in (0, 1)]


def test_a_burst_published_at_once_arrives_complete_and_in_order():
    """20,000 frames in one pipeline, some larger than one socket read: many frames per read,
    frames split across reads."""

    async def scenario():
        layer = _layer()
        client = aioredis.Redis.from_url(settings.VALKEY_URL)
        received = {}
        await layer.group_add("user.1", _attach(layer, received, 1))
        await layer.group_add("user.2", _attach(layer, received, 2))
        group_channel = layer._get_layer()._get_group_channel_name("user.1")
        pipe = client.pipeline(transaction=False)
        for number in range(20000):
            pipe.publish(
                layer._get_layer()._get_group_channel_name(f"user.{number % 2 + 1}"),
                layer.serialize({"type": "t", "n": number}),
            )
            if number % 5000 == 0:  # a frame of 600 KB, past a read's 256 KiB
                pipe.publish(
                    group_channel, layer.serialize({"type": "t", "n": -number, "pad": "x" * 600_000})
                )
        await pipe.execute()
        await _wait_for(lambda: len(received.get(1, [])) + len(received.get(2, [])) >= 20004)
        await layer.flush()
        await client.aclose()
        return received

    received = asyncio.run(scenario())
    expected_1 = []
    for number in range(0, 20000):
        if number % 2 == 0:
            expected_1.append(number)
        if number % 5000 == 0:
            expected_1.append(-number)
    assert received[1] == expected_1
    assert received[2] == list(range(1, 20000, 2))


def test_groups_added_and_discarded_while_frames_flow():
    """Subscribe and unsubscribe while another group receives a steady stream: that stream stays
    complete and in order, a discarded group is forgotten by redis-py's PubSub (not re-subscribed
    on a reconnect), a group added again receives again."""

    async def scenario():
        layer = _layer()
        client = aioredis.Redis.from_url(settings.VALKEY_URL)
        received = {}
        await layer.group_add("user.1", _attach(layer, received, 1))
        churn = _attach(layer, received, 2)
        stop = asyncio.Event()

        async def stream():
            number = 0
            while not stop.is_set():
                await _publish(client, layer, [("user.1", number + k) for k in range(20)])
                number += 20
                await asyncio.sleep(0.002)
            return number

        streaming = asyncio.create_task(stream())
        for _ in range(30):
            await layer.group_add("user.2", churn)
            await layer.group_discard("user.2", churn)
            await asyncio.sleep(0.01)
        await layer.group_add("user.2", churn)
        await _publish(client, layer, [("user.2", 7)])
        await _wait_for(lambda: received.get(2) == [7])
        await layer.group_discard("user.2", churn)
        stop.set()
        sent = await streaming
        await _wait_for(lambda: len(received.get(1, [])) >= sent)
        channel_2 = layer._get_layer()._get_group_channel_name("user.2").encode()
        await _wait_for(lambda: channel_2 not in _shard(layer)._pubsub.channels)
        subscribed = set(_shard(layer)._pubsub.channels)
        await layer.flush()
        await client.aclose()
        return received, sent, subscribed, channel_2

    received, sent, subscribed, channel_2 = asyncio.run(scenario())
    assert received[1] == list(range(sent))
    assert received[2] == [7]
    assert channel_2 not in subscribed


def test_a_failing_delivery_does_not_stop_the_others():
    async def scenario():
        layer = _layer()
        client = aioredis.Redis.from_url(settings.VALKEY_URL)
        received = {}

        def explode(data):
            raise RuntimeError("consumer gone wrong")

        await layer.group_add("user.1", layer.attach(explode))
        await layer.group_add("user.1", _attach(layer, received, 1))
        await layer.group_add("user.2", _attach(layer, received, 2))
        await _publish(client, layer, [("user.1", 1), ("user.2", 2), ("user.1", 3)])
        await _wait_for(lambda: len(received.get(1, [])) == 2 and received.get(2) == [2])
        await _publish(client, layer, [("user.2", 4)])
        await _wait_for(lambda: received.get(2) == [2, 4])
        await layer.flush()
        await client.aclose()
        return received

    received = asyncio.run(scenario())
    assert received == {1: [1, 3], 2: [2, 4]}


def test_it_does_not_spin_when_idle():
    """The receive loop's process CPU over a second: subscribed with nothing arriving (a blocked
    read), then with nothing subscribed (channels_redis' 0.1 s sleep)."""

    async def scenario():
        layer = _layer()
        channels = [layer.attach(lambda data: None) for _ in range(100)]
        for number, channel in enumerate(channels):
            await layer.group_add(f"user.{number}", channel)
        await asyncio.sleep(0.3)
        started = time.process_time()
        await asyncio.sleep(1)
        subscribed_cpu = time.process_time() - started
        for number, channel in enumerate(channels):
            await layer.group_discard(f"user.{number}", channel)
        await _wait_for(lambda: not _shard(layer)._pubsub.subscribed)
        started = time.process_time()
        await asyncio.sleep(1)
        unsubscribed_cpu = time.process_time() - started
        receiving = not _shard(layer)._receive_task.done()
        await layer.flush()
        return subscribed_cpu, unsubscribed_cpu, receiving

    subscribed_cpu, unsubscribed_cpu, receiving = asyncio.run(scenario())
    assert receiving
    assert subscribed_cpu < 0.05
    assert unsubscribed_cpu < 0.05


def test_flush_cancels_the_receive_loop_cleanly_mid_burst(caplog):
    async def scenario():
        layer = _layer()
        client = aioredis.Redis.from_url(settings.VALKEY_URL)
        received = {}
        await layer.group_add("user.1", _attach(layer, received, 1))
        task = _shard(layer)._receive_task
        await _publish(client, layer, [("user.1", number) for number in range(20000)])
        await _wait_for(lambda: received.get(1))
        await layer.flush()
        # The layer works again after the flush (a new connection and receive loop).
        again = {}
        await layer.group_add("user.1", _attach(layer, again, 1))
        await _publish(client, layer, [("user.1", 5)])
        await _wait_for(lambda: again.get(1) == [5])
        await layer.flush()
        await client.aclose()
        return task, again

    with caplog.at_level(logging.WARNING, logger="sessions_app.layer"):
        task, again = asyncio.run(scenario())
    assert task.cancelled()
    assert again == {1: [5]}
    assert [record.message for record in caplog.records if record.name == "sessions_app.layer"] == []


def test_frames_flow_again_after_the_subscriber_connection_is_killed(throwaway_valkey):
    """CLIENT KILL (on a throwaway server: it would kill every process's subscriber on a shared
    one): the loop reconnects at once and redis-py re-subscribes every group."""

    async def scenario():
        layer = _layer(throwaway_valkey.url)
        client = aioredis.Redis.from_url(throwaway_valkey.url)
        received = {}
        for group in range(20):
            await layer.group_add(f"user.{group}", _attach(layer, received, group))
        await _publish(client, layer, [(f"user.{group}", 0) for group in range(20)])
        await _wait_for(lambda: len(received) == 20)
        killed = await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

        async def subscribed():
            channels = [layer._get_layer()._get_group_channel_name(f"user.{group}") for group in range(20)]
            counts = await client.pubsub_numsub(*channels)
            return all(count == 1 for _, count in counts)

        deadline = time.monotonic() + 10
        while not await subscribed() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await _publish(client, layer, [(f"user.{group}", 1) for group in range(20)])
        await _wait_for(lambda: all(len(frames) == 2 for frames in received.values()))
        await layer.flush()
        await client.aclose()
        return killed, received

    killed, received = asyncio.run(scenario())
    assert killed == 1
    assert received == {group: [0, 1] for group in range(20)}


def test_frames_flow_again_after_valkey_is_down_and_back(throwaway_valkey, caplog):
    """Valkey killed and started again (empty, same port) a second later: the loop retries
    once a second, logs one traceback for the outage, and re-subscribes when it is back;
    `receiving_since` tells the watchdog frames arrive again."""

    async def scenario():
        layer = _layer(throwaway_valkey.url)
        received = {}
        for group in range(5):
            await layer.group_add(f"user.{group}", _attach(layer, received, group))
        client = aioredis.Redis.from_url(throwaway_valkey.url)
        await _publish(client, layer, [(f"user.{group}", 0) for group in range(5)])
        await _wait_for(lambda: len(received) == 5)
        await client.aclose()
        throwaway_valkey.kill()
        await asyncio.sleep(1.5)
        down_for_long = not layer.receiving_since(1)
        throwaway_valkey.start()
        client = aioredis.Redis.from_url(throwaway_valkey.url)

        async def subscribed():
            channels = [layer._get_layer()._get_group_channel_name(f"user.{group}") for group in range(5)]
            counts = await client.pubsub_numsub(*channels)
            return all(count == 1 for _, count in counts)

        deadline = time.monotonic() + 10
        while not await subscribed() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await _publish(client, layer, [(f"user.{group}", 1) for group in range(5)])
        await _wait_for(lambda: all(len(frames) == 2 for frames in received.values()))
        receiving = layer.receiving_since(1)
        await layer.flush()
        await client.aclose()
        return received, down_for_long, receiving

    with caplog.at_level(logging.WARNING, logger="sessions_app.layer"):
        received, down_for_long, receiving = asyncio.run(scenario())
    assert received == {group: [0, 1] for group in range(5)}
    assert down_for_long and receiving
    failures = [record for record in caplog.records if record.message == "subscriber connection failed"]
    assert failures and failures[0].exc_info is not None
    assert not any(record.exc_info for record in failures[1:])


# The parser ----------------------------------------------------------------------------------

_WIRE = (
    b">3\r\n$9\r\nsubscribe\r\n$6\r\ngroupA\r\n:1\r\n"
    b">3\r\n$7\r\nmessage\r\n$6\r\ngroupA\r\n$5\r\nhello\r\n"
    b"*3\r\n$7\r\nmessage\r\n$6\r\ngroupB\r\n$0\r\n\r\n"
    b"+PONG\r\n"
    b"-ERR unknown command\r\n"
    b">4\r\n$8\r\npmessage\r\n$2\r\ng*\r\n$6\r\ngroupC\r\n$3\r\nabc\r\n"
    b">3\r\n$11\r\nunsubscribe\r\n$6\r\ngroupA\r\n:0\r\n"
    b">3\r\n$7\r\nmessage\r\n$6\r\ngroupA\r\n$12\r\nline\r\nbreaks\r\n"
)


def _shape(replies):
    return [str(reply) if isinstance(reply, Exception) else reply for reply in replies]


def test_the_parser_reads_messages_and_other_replies_however_the_bytes_are_split():
    expected = [
        [b"subscribe", b"groupA", 1],
        (b"groupA", b"hello"),
        (b"groupB", b""),
        b"PONG",
        "ERR unknown command",
        [b"pmessage", b"g*", b"groupC", b"abc"],
        [b"unsubscribe", b"groupA", 0],
        (b"groupA", b"line\r\nbreaks"),
    ]
    assert _shape(Replies().feed(_WIRE)) == expected
    for split in range(1, len(_WIRE)):
        replies = Replies()
        assert _shape(replies.feed(_WIRE[:split]) + replies.feed(_WIRE[split:])) == expected
    one_byte_at_a_time = Replies()
    assert (
        _shape(
            [reply for byte in range(len(_WIRE)) for reply in one_byte_at_a_time.feed(_WIRE[byte : byte + 1])]
        )
        == expected
    )


@pytest.mark.parametrize(
    "garbled",
    [
        b">3\r\n$7\r\nmessage\r\n$5\r\nuser1\r\nrahasia-isi-pesan\r\n",  # data not a bulk string
        b"*rahasia-isi-pesan\r\n",  # a length that is no number
        b"?rahasia-isi-pesan\r\n",  # an unknown reply type
    ],
)
def test_a_garbled_stream_is_refused_without_its_bytes_in_the_error(garbled):
    """The error is logged by the receive loop: the stream carries chat frames, so no byte of it
    (here a stand-in for a message body) may be in the error's text."""
    with pytest.raises(InvalidResponse) as refused:
        Replies().feed(garbled)
    # As logging prints it (exc_info): the message and any chained exception shown with it.
    assert "rahasia" not in "".join(traceback.format_exception(refused.value))
