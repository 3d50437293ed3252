"""Run one listener under uvicorn with a graceful drain: `python -m halobestie.serve public|internal`.

On SIGTERM (a rolling deploy, `docker stop`, Kubernetes ending a pod):
1. at once the process marks itself draining (`halobestie.server.drain`): /readyz answers 503, so the
   load balancer stops sending new requests and sockets' consumers can tell;
2. for DRAIN_SECONDS it keeps serving everything, new connections included, because the load
   balancer needs a moment to see the 503 (in Kubernetes the preStop sleep adds to this);
3. then uvicorn shuts down: it stops listening, lets in-flight requests finish for at most
   GRACEFUL_SHUTDOWN_SECONDS (then cancels them), closes WebSockets with code 1012 (service
   restart: the apps reconnect to another replica), runs the lifespan shutdown hooks;
4. the process exits 0.
A second SIGTERM skips the rest of the drain; SIGINT (Ctrl-C) skips it too, and a second one
exits at once.

Host and port come from the command line, else PUBLIC_HOST/PUBLIC_PORT (0.0.0.0:3000) and
INTERNAL_HOST/INTERNAL_PORT (127.0.0.1:3001). Logs are JSON lines (settings.LOGGING) for
uvicorn's own loggers too; uvicorn's access log stays off because the request middleware logs
each request with its id and without its query string.
"""

import argparse
import asyncio
import collections
import logging
import os
import signal
import sys
import time

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from halobestie.server import drain, metrics

logger = logging.getLogger("halobestie.serve")

APPS = {
    "public": "halobestie.asgi:public_application",
    "internal": "halobestie.asgi:internal_application",
}


class _OneReaderQueue:
    """What uvicorn's WebSocket protocol uses of asyncio.Queue (put_nowait, get, empty; one reader),
    holding nothing while empty: an asyncio.Queue keeps three deques and an Event (≈ 3 KiB) for
    every open socket, most of them idle."""

    __slots__ = ("items", "waiter")

    def __init__(self):
        self.items = None
        self.waiter = None

    def put_nowait(self, item):
        if self.items is None:
            self.items = collections.deque()
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def empty(self):
        return not self.items

    async def get(self):
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        item = self.items.popleft()
        if not self.items:
            self.items = None
        return item


class _Flag:
    """What uvicorn's WebSocket protocol uses of asyncio.Event (set, clear, wait), with no deque
    of waiters until one waits (only while the transport is paused for writing)."""

    __slots__ = ("value", "waiters")

    def __init__(self):
        self.value = False
        self.waiters = None

    def is_set(self):
        return self.value

    def set(self):
        self.value = True
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self):
        self.value = False

    async def wait(self):
        while not self.value:
            waiter = asyncio.get_running_loop().create_future()
            if self.waiters is None:
                self.waiters = []
            self.waiters.append(waiter)
            await waiter
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol (websockets-sansio), with a receive queue and a
    writable flag that cost nothing while the socket is idle (issue 22: ≤ 25 KiB per idle
    socket). Behaviour unchanged (tests/halobestie/test_serve_websocket.py; every
    socket test through `python -m halobestie.serve` runs on it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue = _OneReaderQueue()
        self.writable = _Flag()
        self.writable.set()


class DrainingServer(uvicorn.Server):
    def __init__(self, config, *, drain_seconds):
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.drain_deadline = None

    def handle_exit(self, sig, frame):
        # Signals are handled here without re-raising them after shutdown (uvicorn would),
        # so that a clean drain ends with exit code 0.
        if sig == signal.SIGTERM and self.drain_deadline is None and not self.should_exit:
            drain.start_draining()
            metrics.DRAINING.set(1)
            self.drain_deadline = time.monotonic() + self.drain_seconds
            logger.info("draining", extra={"drain_seconds": self.drain_seconds})
            return
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        drain.start_draining()
        metrics.DRAINING.set(1)

    async def on_tick(self, counter):
        if self.drain_deadline is not None and time.monotonic() >= self.drain_deadline:
            if not self.should_exit:
                logger.info("drain period over: closing the listener")
            self.should_exit = True
        return await super().on_tick(counter)


def build_server(listener, *, host=None, port=None):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "halobestie.settings")
    # Django is imported only after the settings module is chosen (and the env is read).
    import django
    from django.conf import settings

    django.setup()
    if listener == "public":
        host = host or settings.PUBLIC_HOST
        port = port or settings.PUBLIC_PORT
    else:
        host = host or settings.INTERNAL_HOST
        port = port or settings.INTERNAL_PORT
    config = uvicorn.Config(
        APPS[listener],
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=settings.LOGGING,
        timeout_graceful_shutdown=settings.GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=settings.HTTP_KEEP_ALIVE_SECONDS,
        proxy_headers=True,
        forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
        server_header=False,
        # Off by default (settings.WS_PER_MESSAGE_DEFLATE): the memory of an idle socket.
        ws=LeanWebSocketProtocol,
        ws_per_message_deflate=settings.WS_PER_MESSAGE_DEFLATE,
    )
    return DrainingServer(config, drain_seconds=settings.DRAIN_SECONDS)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m halobestie.serve", description=__doc__.splitlines()[0])
    parser.add_argument("listener", choices=sorted(APPS))
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    server = build_server(args.listener, host=args.host, port=args.port)
    metrics.start_metrics_server()
    server.run()
    if not server.started:
        return 3  # start-up failed (uvicorn logged why)
    logger.info("stopped", extra={"listener": args.listener})
    return 0


if __name__ == "__main__":
    sys.exit(main())
