"""The public listener's WebSocket protocol (halobestie/serve.py): uvicorn's default one with a
receive queue and a writable flag that hold nothing while idle (issue 22), permessage-deflate off
unless WS_PER_MESSAGE_DEFLATE is set. Every socket test (tests/realtime) runs through it."""

import asyncio

from django.test import override_settings

from halobestie.serve import LeanWebSocketProtocol, _Flag, _OneReaderQueue, build_server


def test_the_queue_hands_items_over_in_order_and_holds_nothing_when_empty():
    async def scenario():
        queue = _OneReaderQueue()
        reader = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        assert not reader.done() and queue.empty()
        queue.put_nowait("a")
        queue.put_nowait("b")
        assert await reader == "a"
        assert not queue.empty()
        assert await queue.get() == "b"
        return queue.empty(), queue.items, queue.waiter

    assert asyncio.run(scenario()) == (True, None, None)


def test_the_flag_lets_waiters_through_only_while_set():
    async def scenario():
        flag = _Flag()
        waiter = asyncio.ensure_future(flag.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        flag.set()
        assert await waiter is True
        flag.clear()
        second = asyncio.ensure_future(flag.wait())
        await asyncio.sleep(0)
        assert not second.done()
        flag.set()
        return await second, flag.is_set(), flag.waiters

    assert asyncio.run(scenario()) == (True, True, None)


def test_the_public_listener_uses_it_with_deflate_off_by_default():
    config = build_server("public", port=3999).config
    assert (config.ws, config.ws_per_message_deflate) == (LeanWebSocketProtocol, False)
    with override_settings(WS_PER_MESSAGE_DEFLATE=True):
        assert build_server("public", port=3999).config.ws_per_message_deflate is True
