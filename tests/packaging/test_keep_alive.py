"""HTTP keep-alive of `python -m halobestie.serve`: the idle timeout is HTTP_KEEP_ALIVE_SECONDS,
by default longer than a proxy's idle timeout (60 s), so that the proxy, not the app, closes an
idle connection first (the other way round, a request sent at that moment is reset: seen as a
ConnectionResetError in the embedded test when uvicorn's 5 s default was in force)."""

import socket

from halobestie.serve import build_server
from tests.servers import serve_process, server_env


def _get(sock, host):
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "closed before answering"
        response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return lines[0]


def test_the_default_outlasts_a_proxys_idle_timeout(settings):
    assert settings.HTTP_KEEP_ALIVE_SECONDS > 60
    assert build_server("public").config.timeout_keep_alive == settings.HTTP_KEEP_ALIVE_SECONDS


def test_an_idle_connection_is_closed_after_the_configured_seconds(transactional_db):
    with serve_process("public", env=server_env(HTTP_KEEP_ALIVE_SECONDS="1")) as (_, base):
        host = base.removeprefix("http://")
        address, port = host.split(":")
        with socket.create_connection((address, int(port)), timeout=10) as sock:
            assert _get(sock, host) == b"HTTP/1.1 200 OK"
            assert _get(sock, host) == b"HTTP/1.1 200 OK"  # kept alive between requests
            # Closed by the server after ≈ 1 s; with the 75 s default this recv would time out.
            assert sock.recv(1) == b""
