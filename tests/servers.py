"""Real server processes for tests that need them (listeners, WebSocket, drain, multi-process).

The processes use the test database (pass `transactional_db` in the test so they can see the
data it writes) and this run's Valkey prefixes.
"""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db import connection


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**overrides):
    """The environment of a child process: this run's database, Valkey prefixes, test settings."""
    env = dict(os.environ)
    url = urlsplit(os.environ["DATABASE_URL"])
    env["DATABASE_URL"] = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    env.update(
        TESTING="true",
        VALKEY_KEY_PREFIX=settings.VALKEY_KEY_PREFIX,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYER_PREFIX,
        DATABASE_POOL="false",
        PYTHONUNBUFFERED="1",
        # The launcher's drain after SIGTERM, short so that stopping a test server is quick.
        DRAIN_SECONDS="0.2",
        GRACEFUL_SHUTDOWN_SECONDS="5",
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@contextmanager
def uvicorn_process(app="public", *, port=None, env=None, log_path=None):
    """Start `uvicorn halobestie.asgi:<app>_application`, wait until /healthz answers, yield
    (process, base_url), and stop it (SIGTERM, then kill) afterwards."""
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"halobestie.asgi:{app}_application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--no-access-log",
    ]
    with _server(command, app, port, env=env, log_path=log_path) as started:
        yield started


@contextmanager
def serve_process(listener="public", *, port=None, env=None, log_path=None):
    """Start the production launcher `python -m halobestie.serve <listener>` (graceful drain,
    JSON logs), wait until /healthz answers, yield (process, base_url), and stop it afterwards."""
    port = port or free_port()
    command = [sys.executable, "-m", "halobestie.serve", listener, "--host", "127.0.0.1", "--port", str(port)]
    with _server(command, listener, port, env=env, log_path=log_path) as started:
        yield started


@contextmanager
def _server(command, app, port, *, env, log_path):
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env or server_env(), stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} server exited with {process.returncode}")
            try:
                if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or accepted but not answering yet (a loaded machine)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} server did not come up")
            time.sleep(0.1)
        yield process, base_url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log_path:
            log.close()


def wait_for_lock_waiter(database_url, timeout=30):
    """Block until a backend of this database waits on a lock (a request or statement a test
    holds up with a lock of its own). Polled from its own autocommit connection:
    pg_stat_activity is a snapshot within a transaction."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("nothing reached the database lock")


class ThrowawayValkey:
    """A valkey-server (or redis-server) on a free port that keeps nothing on disk, for tests
    that stop and restart Valkey: `kill()` is SIGKILL, `stop()` a clean SIGTERM, and `start()`
    again comes back empty on the same port, as after a restart without persistence."""

    def __init__(self, folder):
        import shutil

        import pytest

        self.binary = shutil.which("valkey-server") or shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("needs valkey-server or redis-server installed (apt-get install redis-server)")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
