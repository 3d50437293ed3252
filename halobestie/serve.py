"""Run one listener under uvicorn with a graceful drain: `python -m halobestie.serve public|internal`.

On SIGTERM (a rolling deploy, `docker stop`, Kubernetes ending a pod):
1. at once the process marks itself draining (`halobestie.server.drain`): /readyz answers 503, so the
   load balancer stops sending new requests and sockets' consumers can tell;
2. for DRAIN_SECONDS it keeps serving everything, new connections included, because the load
   balancer needs a moment to see the 503 (in Kubernetes the preStop sleep adds to this);
3. then the server shuts down: it stops listening and closes every WebSocket with code 1012
   (service restart: the apps reconnect to another replica) at once (`close_websockets`: every
   close frame written in one loop turn, the apps' close replies awaited together for at most
   SOCKET_CLOSE_SECONDS, the sockets' consumers woken only then); uvicorn then lets in-flight
   requests and the consumers' disconnects finish within what is left of
   GRACEFUL_SHUTDOWN_SECONDS (then cancels them) and runs the lifespan shutdown hooks;
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
import gc
import logging
import os
import signal
import sys
import time

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from halobestie.server import drain, metrics, send_now

logger = logging.getLogger("halobestie.serve")

# At shutdown, how long the apps' replies to the 1012 close frames are awaited before their
# connections are closed anyway (part of GRACEFUL_SHUTDOWN_SECONDS).
SOCKET_CLOSE_SECONDS = 1.0

APPS = {
    "public": "halobestie.asgi:public_application",
    "internal": "halobestie.asgi:internal_application",
}


class _OneReaderQueue:
    """What uvicorn's WebSocket protocol uses of asyncio.Queue (put_nowait, get, empty; one reader),
    holding nothing while empty: an asyncio.Queue keeps three deques and an Event (≈ 3 KiB) for
    every open socket, most of them idle."""

    __slots__ = ("items", "waiter", "held")

    def __init__(self):
        self.items = None
        self.waiter = None
        self.held = False  # while True, an item does not wake the reader (`release` does)

    def put_nowait(self, item):
        if self.items is None:
            self.items = collections.deque()
        self.items.append(item)
        if not self.held and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def hold(self):
        self.held = True

    def release(self):
        self.held = False
        if self.items and self.waiter is not None and not self.waiter.done():
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
    socket), and the shutdown of `close_websockets` (all sockets' 1012 in one loop turn).
    Otherwise uvicorn's behaviour (tests/halobestie/test_serve_websocket.py; every socket test
    through `python -m halobestie.serve` runs on it)."""

    closing_for_shutdown = False
    on_lost = None  # close_websockets' callback, called once the connection is gone

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue = _OneReaderQueue()
        self.writable = _Flag()
        self.writable.set()

    def handle_connect(self, event):
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the upgrade was refused
        if scope is not None:
            scope["extensions"][send_now.EXTENSION] = self.send_text_now

    def send_text_now(self, text) -> bool:
        """Write the text frame `text` now: True; or nothing, False, when uvicorn's `send` would
        wait (the transport paused for flow control) or refuse (handshake not complete, a close
        sent or received, shutting down, gone): the caller then sends it through ASGI, which
        waits or raises as it always did. Never raises, never awaits."""
        if not (self.writable.value and self.handshake_complete) or self.initial_response is not None:
            return False
        if self.close_sent or self.disconnected or self.closing_for_shutdown:
            return False
        if self.conn.state is not State.OPEN or self.transport.is_closing():
            return False
        # uvicorn's `send` for `websocket.send` with text, without the await before it.
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def start_closing_for_shutdown(self, code) -> bool:
        """Write the close frame now (no await) and queue the app's `websocket.disconnect`
        without waking it (`close_websockets` does, once every socket is closed or the bound
        has passed). The transport closes when the app replies with its close frame (uvicorn's
        handle_close), else at `close_websockets`' bound. False when there is nothing to close
        (not yet accepted, already closing, gone)."""
        if not self.handshake_complete or self.close_sent or self.disconnected or self.initial_response:
            return False
        if self.transport.is_closing():
            return False
        self.stop_keepalive()
        self.closing_for_shutdown = True
        self.queue.hold()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code})
        # The protocol object stays in the CLOSING state, so an app that still sends (a frame
        # being delivered right now) gets ClientDisconnected from uvicorn, as after a client's close.
        self.conn.send_close(code)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.transport.can_write_eof():
            # FIN right behind the close frame: the app sees its socket end as soon as this
            # loop turn's writes go out, not when this (busy) process gets to its reply. Reading
            # goes on until the reply or the app's FIN, so nothing unread is left to reset.
            self.transport.write_eof()
        if self.read_paused:  # the reply must be read
            self.read_paused = False
            self.transport.resume_reading()
        return True

    def send_receive_event_to_app(self):
        if self.closing_for_shutdown:
            # A frame the app sent before it read our close frame: dropped, as uvicorn drops
            # those after an app's own close (reading must go on until the reply; the frame was
            # not acknowledged, so the app sends it again after reconnecting).
            self.frames = []
            return
        super().send_receive_event_to_app()

    def handle_close(self, event):
        if self.closing_for_shutdown:
            # The app's reply to our close frame: the closing handshake is complete (uvicorn's
            # handle_close would write websockets' end of stream, sent already by write_eof).
            self.transport.close()
            return
        super().handle_close(event)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        scope = getattr(self, "scope", None)
        if scope is not None:
            # The writer is a bound method: without it the scope no longer refers back to this
            # protocol, which is then freed when the connection is, not by a later gc collection.
            scope["extensions"].pop(send_now.EXTENSION, None)
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()

    def shutdown(self):
        # uvicorn's shutdown() for each connection, after close_websockets: a socket that is
        # already closing is only cut (its close frame went out; sending another would raise).
        if self.closing_for_shutdown:
            self.transport.close()
            return
        super().shutdown()


async def close_websockets(connections, *, code=1012, timeout):
    """Close every open WebSocket of `connections` with `code` in one loop turn: each close frame
    and the end of the stream (FIN) written before any socket's consumer runs, then the apps'
    close replies awaited together (each connection closes as its reply or the app's FIN
    arrives) for at most `timeout` seconds, the rest closed then, and only then the consumers
    woken with their `websocket.disconnect` (their clean-up, e.g. the socket registry, runs
    after every socket is closed, so no app waits for it). Returns (sockets closed, of which
    closed at the bound).

    uvicorn's own shutdown writes the frames in one loop too, but closes each transport at once
    and wakes each consumer in between: on uvloop a transport's FIN goes out only in a later
    callback, so the app of the 2,000th socket waited behind 1,999 disconnect handlers (issue 22,
    reconnect storms: the last 1012 took 2.5 s)."""
    loop = asyncio.get_running_loop()
    closing = [
        c for c in list(connections)
        if isinstance(c, LeanWebSocketProtocol) and c.start_closing_for_shutdown(code)
    ]  # fmt: skip
    if not closing:
        return 0, 0
    open_count = len(closing)
    all_closed = loop.create_future()

    def one_lost():
        nonlocal open_count
        open_count -= 1
        if open_count == 0 and not all_closed.done():
            all_closed.set_result(None)

    for protocol in closing:
        if protocol.disconnected:
            one_lost()
        else:
            protocol.on_lost = one_lost
    late = 0
    if open_count:
        try:
            await asyncio.wait_for(asyncio.shield(all_closed), timeout)
        except TimeoutError:
            late = open_count
    for protocol in closing:
        protocol.on_lost = None
        if not protocol.disconnected:
            protocol.transport.close()
        protocol.queue.release()
    return len(closing), late


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

    async def startup(self, sockets=None):
        await super().startup(sockets)
        # Everything loaded by now (Django, the apps, the URLconfs: hundreds of thousands of
        # objects that live as long as the process) leaves the collector's generations: a full
        # collection then walks only what the requests and sockets made since (issue 22: a
        # public process in a reconnect storm made 5–6 full collections of ≈ 0.1 s of CPU each;
        # frozen, about half of that).
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets=None):
        """uvicorn's shutdown, with every WebSocket closed (1012) at once first (`close_websockets`);
        the closing counts against GRACEFUL_SHUTDOWN_SECONDS."""
        started = time.monotonic()
        drain.start_stopping()
        for server in self.servers:
            server.close()  # stop accepting first (uvicorn's shutdown does it again: harmless)
        graceful = self.config.timeout_graceful_shutdown
        bound = SOCKET_CLOSE_SECONDS if graceful is None else min(SOCKET_CLOSE_SECONDS, graceful)
        closed, late = await close_websockets(self.server_state.connections, timeout=bound)
        if closed:
            logger.info(
                "sockets closed with 1012",
                extra={"sockets": closed, "without_reply": late,
                       "duration_ms": round((time.monotonic() - started) * 1000, 1)},
            )  # fmt: skip
        if graceful is not None:
            self.config.timeout_graceful_shutdown = max(0.0, graceful - (time.monotonic() - started))
        await super().shutdown(sockets)

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
