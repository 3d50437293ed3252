"""CPU per chat message delivered to a socket, fast path vs queued path (issue 22, "chat past
the relay"): one process's cost from the layer's callback to the bytes written, nothing else.

    TESTING=true .venv/bin/python scripts/with_services.py -- .venv/bin/python -m bench.delivery_micro

A real LeanWebSocketProtocol on a TCP socket (a websockets client in another process reads and
counts), the real SocketObservabilityMiddleware around a ChatConsumer wired as its `__call__`
wires it (the real layer's `attach`, no Valkey traffic: frames are handed to `deliver` as the
subscriber connection does, one per loop turn, each waited for as at ~1,000 msg/s). Rounds
alternate the two paths; prints process CPU µs per delivered frame for each round (uvloop, as
uvicorn runs; the harness's own loop turn per frame is printed first, to subtract).
Environment: MICRO_FRAMES (per round, default 20000), MICRO_ROUNDS (default 4).
"""

import asyncio
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "halobestie.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from uvicorn.config import Config  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from halobestie.serve import LeanWebSocketProtocol  # noqa: E402
from halobestie.server.middleware import SocketObservabilityMiddleware  # noqa: E402
from halobestie.server.send_now import EXTENSION  # noqa: E402
from sessions_app.consumers import ChatConsumer  # noqa: E402
from sessions_app.layer import UserGroupLayer  # noqa: E402

FRAMES = int(os.environ.get("MICRO_FRAMES", "20000"))
ROUNDS = int(os.environ.get("MICRO_ROUNDS", "4"))

READER = """
import sys
from websockets.sync.client import connect
total = int(sys.argv[2])
with connect(sys.argv[1], max_size=None) as ws:
    count = 0
    while count < total:
        ws.recv()
        count += 1
print(count)
"""

TEXT = json.dumps(
    {"type": "message.new", "id": 981, "session_id": "0b6f7a52-5d3e-4c1e-9a53-0f1f6d0f6a11", "seq": 12,
     "sender_id": 7, "kind": "text", "body": "halo kak, aku mau cerita sedikit boleh?",
     "client_msg_id": "c-1732-001", "created_at": "2026-11-27T13:05:01.123456+07:00", "is_masked": False},
    ensure_ascii=False, separators=(",", ":"),
)  # fmt: skip


async def main():
    layer = UserGroupLayer(hosts=[settings.VALKEY_URL], prefix="micro-delivery")
    ready = asyncio.get_running_loop().create_future()
    finished = asyncio.get_running_loop().create_future()

    async def consumer_app(scope, receive, send):
        # What ChatConsumer.__call__ and connect() leave behind, minus authentication.
        consumer = ChatConsumer()
        consumer.scope, consumer.base_send, consumer.channel_layer = scope, send, layer
        consumer.send_text_now = scope["extensions"].get(EXTENSION)
        consumer.dispatch_lock = asyncio.Lock()
        consumer.user_id, consumer.participants = 8, {}
        consumer.channel_name = layer.attach(consumer._delivered)
        assert (await receive())["type"] == "websocket.connect"
        await consumer.accept()
        ready.set_result(consumer)
        await receive()  # the disconnect
        finished.set_result(None)

    config = Config(
        SocketObservabilityMiddleware(consumer_app),
        ws=LeanWebSocketProtocol,
        lifespan="off",
        log_level="warning",
    )
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: LeanWebSocketProtocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    total = FRAMES * ROUNDS
    reader = subprocess.Popen([sys.executable, "-c", READER, f"ws://127.0.0.1:{port}/", str(total)])
    consumer = await ready
    writer = consumer.send_text_now
    payload = layer.serialize(
        {"type": "deliver.frame", "text": TEXT, "sender_id": 7, "stored_at": time.time()}
    )
    deliver = layer._get_layer().deliver
    started = time.process_time()
    for _ in range(FRAMES):
        await asyncio.sleep(0)
    harness = (time.process_time() - started) / FRAMES * 1e6
    print(f"harness (a loop turn per frame, nothing delivered): {harness:.1f} µs CPU per frame")
    for number in range(ROUNDS):
        fast = number % 2 == 0
        consumer.send_text_now = writer if fast else None
        started = time.process_time()
        for _ in range(FRAMES):
            deliver(consumer.channel_name, payload)
            while consumer.drainer is not None:
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # the subscriber connection's next read
        used = time.process_time() - started
        print(f"{'fast path' if fast else 'queued path'}: {used / FRAMES * 1e6:.1f} µs CPU per frame")
    await asyncio.get_running_loop().run_in_executor(None, reader.wait, 60)
    await asyncio.wait_for(finished, 10)
    server.close()


if __name__ == "__main__":
    import uvloop  # as uvicorn runs the server

    uvloop.run(main())
