"""A server process stopping with many sockets open (`python -m halobestie.serve`, SIGTERM): every
socket gets its 1012 with a clean closing handshake, an app that does not answer is closed all
the same, each closed socket leaves the registry, nothing is logged per socket, and a message
sent meanwhile reaches the reconnected app by `sync` (issue 22, reconnect storms)."""

import json
import signal
import socket
import struct
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from websockets.exceptions import ConnectionClosed

from halobestie.accounts.tokens import tokens_for
from sessions_app import realtime
from tests.realtime.conftest import Socket
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_1012 = b"\x88\x02" + struct.pack("!H", 1012)  # an unmasked close frame, code 1012


def _silent_socket(base_url, user):
    """A raw TCP connection that opens the WebSocket, reads up to its `hello`, then never reads
    again (an app frozen in the background): it never answers a close frame."""
    address = urlsplit(base_url)
    raw = socket.create_connection((address.hostname, address.port), timeout=10)
    raw.sendall(
        (
            "GET /ws/v1/ HTTP/1.1\r\n"
            f"Host: {address.hostname}:{address.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {tokens_for(user)['access']}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b'"type":"hello"' not in received:
        chunk = raw.recv(65536)
        assert chunk, "closed before hello"
        received += chunk
    return raw


def _read_to_end(raw):
    received = b""
    while chunk := raw.recv(65536):
        received += chunk
    return received


def test_it_closes_every_socket_with_1012_at_once_and_loses_nothing(active_session, tmp_path):
    pairs = [active_session() for _ in range(12)]
    env = server_env(DRAIN_SECONDS="0.2", GRACEFUL_SHUTDOWN_SECONDS="10", LOG_LEVEL="INFO")
    log_path = tmp_path / "a.log"
    with serve_process("public", log_path=tmp_path / "b.log", env=env) as (_, server_b):
        with serve_process("public", log_path=log_path, env=env) as (process_a, server_a):
            sockets = []
            for _, client, mitra in pairs:
                for user in (client, mitra.user):
                    sockets.append(Socket(server_a, user))
                    sockets[-1].expect_type("hello")
            silent = _silent_socket(server_a, pairs[0][1])
            # The first pair's mitra has a second socket on the process that stays.
            session, client, mitra = pairs[0]
            staying = Socket(server_b, mitra.user)
            staying.expect_type("hello")
            first = staying.send_message(session.id, "sebelum")
            before = staying.expect_type("message.ack", client_msg_id=first)["seq"]
            sockets[0].expect_type("message.new", client_msg_id=first)

            process_a.send_signal(signal.SIGTERM)
            during = staying.send_message(session.id, "selama")  # while process A closes
            for open_socket in sockets:
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        open_socket.pending.append(json.loads(open_socket.ws.recv(timeout=15)))
                # 1012 received, and the app's reply sent back: a complete closing handshake.
                assert (closed.value.rcvd.code, closed.value.sent.code) == (1012, 1012)
                assert closed.value.rcvd_then_sent is True
            # The silent app has not read a byte since its hello: process A ends all the same
            # (its connection closed at the bound), and its last bytes are the 1012.
            assert process_a.wait(20) == 0
            assert _read_to_end(silent).endswith(CLOSE_1012)
            silent.close()
        after = staying.expect_type("message.ack", client_msg_id=during)["seq"]
        assert after == before + 1

        # The client's app reconnects to the other process and syncs from the last seq it saw.
        with Socket(server_b, client) as again:
            again.expect_type("hello")
            again.send({"type": "sync", "sessions": [{"session_id": str(session.id), "after_seq": before}]})
            replayed = again.expect_type("message.new")
            assert (replayed["seq"], replayed["body"]) == (after, "selama")
            assert again.expect_type("sync.done")["last_seq"] == after
        staying.close()

    # Every socket of process A left the registry before the process exited.
    for _, client, mitra in pairs[1:]:
        assert async_to_sync(realtime.has_open_socket)(client.id) is False
        assert async_to_sync(realtime.has_open_socket)(mitra.user_id) is False
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert not [line for line in lines if line.get("level") == "ERROR"]
    closing = [line for line in lines if line["msg"] == "sockets closed with 1012"]
    assert [(line["sockets"], line["without_reply"]) for line in closing] == [(25, 1)]
