"""The public listener's WebSocket protocol (halobestie/serve.py): uvicorn's default one with a
receive queue and a writable flag that hold nothing while idle (issue 22), permessage-deflate off
unless WS_PER_MESSAGE_DEFLATE is set. Every socket test (tests/realtime) runs through it."""

import asyncio
import contextlib

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


def test_its_synchronous_writer_writes_only_when_uvicorns_send_would_write_at_once():
    """scope["extensions"]["halobestie.send_text_now"] (the chat delivery fast path): frames
    written at once and in order with the ordinary sends; nothing written (False, never an
    exception) before the handshake, while the transport is paused, after a close; gone from
    the scope once the connection is."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from halobestie.server.send_now import EXTENSION

    results = {}
    state = ServerState()

    async def app(scope, receive, send):
        write = scope["extensions"][EXTENSION]
        results["before accept"] = write("too early")
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        results["open"] = [write("one"), write("two")]
        await send({"type": "websocket.send", "text": "three"})
        protocol = next(iter(state.connections))
        protocol.pause_writing()
        results["paused"] = write("while paused")
        protocol.resume_writing()
        results["resumed"] = write("four")
        await send({"type": "websocket.close", "code": 4000})
        results["closed"] = write("too late")
        results["scope"] = scope
        await receive()  # the disconnect

    async def scenario():
        config = Config(app, ws=LeanWebSocketProtocol, lifespan="off", log_level="warning")
        config.load()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: LeanWebSocketProtocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        received = []
        async with connect(f"ws://127.0.0.1:{port}/") as client:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    received.append(await client.recv())
            code = client.close_code
        for _ in range(100):  # the server's side of the connection closes
            if not state.connections:
                break
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return received, code

    received, code = asyncio.run(scenario())
    assert (received, code) == (["one", "two", "three", "four"], 4000)
    assert results["before accept"] is False
    assert results["open"] == [True, True]
    assert (results["paused"], results["resumed"], results["closed"]) == (False, True, False)
    assert EXTENSION not in results["scope"]["extensions"]
