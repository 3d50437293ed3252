"""The embedded default as `make run` serves it: a real `python -m halobestie.serve public` on a
SQLite file with the in-memory channel layer (no DATABASE_URL, no VALKEY_URL), the scheduler
running inside that process (SCHEDULER_IN_PROCESS's default). The tests here drive that server
over HTTP and WebSocket only and never use the test PostgreSQL database, so the suite's
PostgreSQL check (tests/conftest.py `_real_postgres`) is switched off for them."""

import html
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect

from tests.realtime.conftest import Socket as RealtimeSocket
from tests.realtime.conftest import ws_url
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
# Every variable that would take the process off the embedded default, or into test mode.
_NOT_INHERITED = (
    "DATABASE_URL",
    "VALKEY_URL",
    "VALKEY_KEY_PREFIX",
    "CHANNEL_LAYER_PREFIX",
    "SCHEDULER_IN_PROCESS",
    "TESTING",
    "DJANGO_SETTINGS_MODULE",
)


@pytest.fixture(autouse=True)
def _real_postgres():
    """Overrides the suite's autouse fixture: these tests open no test database at all."""
    yield


def embedded_env(sqlite_path, **overrides):
    """`make run`'s environment (the Makefile's development defaults) on this SQLite file."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        SQLITE_PATH=str(sqlite_path),
        DEBUG="true",
        TESTING="false",
        FAZPASS_ENABLED="false",
        XENDIT_ENABLED="false",
        OTP_TEST_PHONES="+6281200000001",
        ADMIN_EMAIL="admin@halobestie.local",
        ADMIN_PASSWORD="halobestie-admin",
        PYTHONUNBUFFERED="1",
        DRAIN_SECONDS="0",
        GRACEFUL_SHUTDOWN_SECONDS="5",
        METRICS_PORT="0",
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def manage(env, *args, timeout=300):
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=timeout,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite file after `manage.py migrate` and `seed --demo` (as `make run` leaves it),
    made once per run and copied for each server."""
    path = tmp_path_factory.mktemp("embedded-template") / "db.sqlite3"
    env = embedded_env(path)
    manage(env, "migrate", "--noinput")
    manage(env, "seed", "--demo")
    return path


class EmbeddedServer:
    def __init__(self, base_url, env, log_path):
        self.base_url = base_url
        self.api = f"{base_url}/api/v1"
        self.env = env
        self.log_path = log_path

    def shell(self, code):
        """Run `code` in `manage.py shell` on this server's database (state through the services)."""
        manage(self.env, "shell", "-c", code)

    def log(self):
        return self.log_path.read_text(errors="replace")


@contextmanager
def embedded_server(folder, template, *, setup="", **env_overrides):
    """Copy the migrated database, run `setup` (manage.py shell code) on it, start the public
    listener on it and wait for /healthz; yield an EmbeddedServer; SIGTERM it afterwards."""
    sqlite_path = folder / "db.sqlite3"
    shutil.copy(template, sqlite_path)
    port = free_port()
    env = embedded_env(sqlite_path, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **env_overrides)
    log_path = folder / "public.log"
    server = EmbeddedServer(f"http://127.0.0.1:{port}", env, log_path)
    if setup:
        server.shell(setup)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "halobestie.serve", "public", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"public server exited with {process.returncode}:\n{server.log()}")
                try:
                    if requests.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("public server did not come up")
                time.sleep(0.1)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class ApiError(AssertionError):
    pass


def call(http, method, url, token=None, **kwargs):
    """One API call; any answer >= 400 fails with the status and the error envelope."""
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = http.request(method, url, headers=headers, timeout=60, **kwargs)
    if response.status_code >= 400:
        raise ApiError(f"{method} {url} → {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


def client_login(http, server, phone, code="123456"):
    call(http, "POST", f"{server.api}/auth/otp/request", json={"phone": phone})
    return call(http, "POST", f"{server.api}/auth/otp/verify", json={"phone": phone, "code": code})["access"]


def mitra_login(http, server, phone, password):
    body = {"phone": phone, "password": password}
    return call(http, "POST", f"{server.api}/auth/mitra/login", json=body)["access"]


def pay(http, invoice_url):
    """Press "Bayar" on the local checkout page (the CSRF token as a browser sends it)."""
    page = http.get(invoice_url, timeout=60)
    assert page.status_code == 200, page.status_code
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    data = {"action": "pay", "csrfmiddlewaretoken": html.unescape(token.group(1)) if token else ""}
    response = http.post(
        invoice_url, data=data, headers={"Referer": invoice_url}, timeout=60, allow_redirects=False
    )
    if response.status_code >= 400:
        raise ApiError(f"checkout → {response.status_code}")


@contextmanager
def heartbeats(server, tokens, every=3.0):
    """Keep these mitras present (POST /mitra/heartbeat every few seconds, as the app does)
    while the block runs: a slow machine must not let their presence lapse mid-test.

    Every 3 s, under uvicorn's 5 s keep-alive; and, as an app's HTTP client does, a heartbeat
    sent just as the server closed the idle connection is sent once more on a new one (requests
    never retries a POST by itself)."""
    stop = threading.Event()
    errors = []

    def beat():
        http = requests.Session()
        while not stop.is_set():
            for token in list(tokens):
                try:
                    try:
                        call(http, "POST", f"{server.api}/mitra/heartbeat", token)
                    except requests.ConnectionError:
                        call(http, "POST", f"{server.api}/mitra/heartbeat", token)
                except Exception as exc:  # reported by the test below
                    errors.append(exc)
            stop.wait(every)

    thread = threading.Thread(target=beat, name="heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors


class Socket(RealtimeSocket):
    """The realtime tests' protocol client, with a patient handshake: forty sockets open at once
    on one process of a busy machine."""

    def __init__(self, base_url, *, token):
        self.ws = connect(
            ws_url(base_url), additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=60
        ).__enter__()
        self.pending = []
