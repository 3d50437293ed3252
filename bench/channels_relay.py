"""Baseline (b), the framework's floor: the same chat traffic through a bare Channels consumer
on the pub/sub layer (RedisPubSubChannelLayer), served by uvicorn, with no database and no auth.

`BENCH_REDIS_URL=… BENCH_LAYER_PREFIX=… uvicorn bench.channels_relay:application`
Channels' defaults are kept (AsyncWebsocketConsumer as shipped): this is what a relay written the
plain Channels way costs. The frames are those of bench/floor_relay.py.
"""

import itertools
import json
import os
from urllib.parse import parse_qs

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-channels-relay-not-a-secret-0123456789",
    INSTALLED_APPS=["channels"],
    DATABASES={},
    ALLOWED_HOSTS=["*"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")],
                "prefix": os.environ.get("BENCH_LAYER_PREFIX", "benchrelay"),
            },
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

_seq = itertools.count(1)


class Relay(AsyncWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.user_id = query["user"][0]
        await self.accept()
        await self.channel_layer.group_add(f"u.{self.user_id}", self.channel_name)
        await self.send(text_data=json.dumps({"type": "hello", "user_id": int(self.user_id)}))

    async def disconnect(self, code):
        await self.channel_layer.group_discard(f"u.{self.user_id}", self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        frame = json.loads(text_data)
        if frame.get("type") != "message.send":
            return
        number = next(_seq)
        await self.send(
            text_data=json.dumps(
                {
                    "type": "message.ack",
                    "client_msg_id": frame["client_msg_id"],
                    "seq": number,
                    "session_id": frame["session_id"],
                }
            )
        )
        out = json.dumps(
            {
                "type": "message.new",
                "session_id": frame["session_id"],
                "seq": number,
                "sender_id": int(self.user_id),
                "kind": "text",
                "body": frame["body"],
                "client_msg_id": frame["client_msg_id"],
            }
        )
        for user_id in (self.user_id, frame["to"]):
            await self.channel_layer.group_send(f"u.{user_id}", {"type": "deliver.frame", "text": out})

    async def deliver_frame(self, event):
        await self.send(text_data=event["text"])


async def _health(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/v1/", Relay.as_asgi())]), "http": _health, "lifespan": _health}
)
