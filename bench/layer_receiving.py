"""The channel layer's receiving CPU per pub/sub frame (issue 22), one checkout against another:

    .venv/bin/python -m bench.layer_receiving [--root CHECKOUT] [--rate 2000] [--frames 20000]

A process with GROUPS groups (one attached channel each, as a chat socket) receives FRAMES chat
frames that a separate publisher process sends (--rate 0: all at once, pipelined; else RATE
frames/s in 5 ms ticks). Printed: the receiving process's CPU (user + system) between its first
and last frame, per frame. On uvloop, as uvicorn serves. `--root` imports sessions_app from
another checkout (e.g. a worktree of main) for an A/B; alternate the runs on a shared machine.
Valkey: VALKEY_URL, else 127.0.0.1:6379 (channels under the prefix `benchrecv`).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time

FRAME = {
    "type": "deliver.frame",
    "text": '{"type":"message.new","session_id":123,"seq":45,"client_msg_id":"0f8e2c1a-9b7d-4a51-8c3e-'
    '2d6f1a0b9c77","sender":"client","body":"halo, aku lagi sedih banget hari ini, boleh cerita?",'
    '"sent_at":"2026-11-30T12:00:00.000Z"}',
}
TICK = 0.005


def _arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=os.getcwd())
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--rate", type=float, default=2000, help="frames/s; 0: all at once")
    parser.add_argument("--prefix", default="benchrecv")
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def _layer(arguments):
    sys.path.insert(0, arguments.root)
    from django.conf import settings

    settings.configure()
    from sessions_app.layer import UserGroupLayer

    url = os.environ.get("VALKEY_URL") or "redis://127.0.0.1:6379/0"
    return url, UserGroupLayer(hosts=[url], prefix=arguments.prefix)


def publish(arguments):
    import redis

    url, layer = _layer(arguments)
    payload = layer.serialize(FRAME)
    client = redis.Redis.from_url(url)
    channels = [f"{arguments.prefix}__group__g{number}" for number in range(arguments.groups)]
    per_tick = arguments.frames if arguments.rate <= 0 else max(1, int(arguments.rate * TICK))
    started = time.monotonic()
    sent = ticks = 0
    while sent < arguments.frames:
        pipe = client.pipeline(transaction=False)
        for _ in range(min(per_tick, arguments.frames - sent)):
            pipe.publish(channels[sent % arguments.groups], payload)
            sent += 1
        pipe.execute()
        ticks += 1
        if arguments.rate > 0:
            time.sleep(max(0.0, started + ticks * TICK - time.monotonic()))


async def receive(arguments):
    _, layer = _layer(arguments)
    count = 0
    marks = {}
    done = asyncio.get_running_loop().create_future()

    def callback(data):
        nonlocal count
        count += 1
        if count == 1 or count == arguments.frames:
            marks[count] = (time.process_time(), time.monotonic())
        if count == arguments.frames:
            done.set_result(None)

    for number in range(arguments.groups):
        await layer.group_add(f"g{number}", layer.attach(callback))
    await asyncio.sleep(0.3)
    publisher = subprocess.Popen(
        [sys.executable, "-m", "bench.layer_receiving", *sys.argv[1:], "--publisher"]
    )
    try:
        await asyncio.wait_for(done, 120)
    finally:
        publisher.wait()
        await layer.flush()
    cpu = marks[arguments.frames][0] - marks[1][0]
    wall = marks[arguments.frames][1] - marks[1][1]
    rate = f"{arguments.rate:g}/s" if arguments.rate > 0 else "at once"
    per_frame = cpu * 1e6 / (arguments.frames - 1)
    print(
        f"{arguments.root}: {arguments.frames} frames {rate}: receiving CPU {per_frame:.1f} µs/frame "
        f"({cpu:.3f} s CPU in {wall:.2f} s)"
    )


def main():
    arguments = _arguments()
    if arguments.publisher:
        publish(arguments)
        return
    import uvloop

    uvloop.run(receive(arguments))


if __name__ == "__main__":
    main()
