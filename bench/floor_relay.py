"""Baseline (a), the floor: the same chat traffic relayed through Redis pub/sub by the
`websockets` library, with no Django, no auth and no database.

`python -m bench.floor_relay --port P --redis URL --prefix benchfloor:`
A socket opens `/ws/v1/?user=<id>` and subscribes to `<prefix><id>`. For each `message.send`
(with the recipient in `to`) it answers `message.ack` and publishes one `message.new` to the
sender's and the recipient's channels, as our chat does (ack + a frame to each participant).
"""

import argparse
import asyncio
import contextlib
import itertools
import json
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from websockets.asyncio.server import serve


async def main(port, redis_url, prefix):
    # A blocking pool: publishers wait for a connection instead of failing when all are busy.
    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64)
    )
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"{prefix}_")  # listen() needs a subscription to start with
    local: dict[str, set] = {}
    seq = itertools.count(1)

    async def reader():
        async for item in pubsub.listen():
            if item["type"] != "message":
                continue
            user_id = item["channel"].decode()[len(prefix) :]
            text = item["data"].decode()
            for ws in list(local.get(user_id, ())):
                with contextlib.suppress(Exception):  # closed meanwhile
                    await ws.send(text)

    async def handler(ws):
        user_id = parse_qs(urlsplit(ws.request.path).query)["user"][0]
        sockets = local.setdefault(user_id, set())
        if not sockets:
            await pubsub.subscribe(prefix + user_id)
        sockets.add(ws)
        await ws.send(json.dumps({"type": "hello", "user_id": int(user_id)}))
        try:
            async for text in ws:
                frame = json.loads(text)
                if frame.get("type") != "message.send":
                    continue
                number = next(seq)
                await ws.send(
                    json.dumps(
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
                        "sender_id": int(user_id),
                        "kind": "text",
                        "body": frame["body"],
                        "client_msg_id": frame["client_msg_id"],
                    }
                )
                await client.publish(prefix + user_id, out)
                await client.publish(prefix + str(frame["to"]), out)
        finally:
            sockets.discard(ws)
            if not sockets:
                local.pop(user_id, None)
                await pubsub.unsubscribe(prefix + user_id)

    task = asyncio.create_task(reader())
    async with serve(handler, "127.0.0.1", port, max_size=2**20, compression=None):
        await asyncio.Future()
    task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", default="benchfloor:")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.port, args.redis, args.prefix))
