"""Fault-injection helpers: throwaway Valkey and PostgreSQL servers the test owns (so it can
kill and restart them), traffic loops that record every answer, and the `soak` marker.

Tests marked `soak` are slow (bigger fuzz runs, long outages): they run only with
`pytest -m soak` (`make soak`), never in `make test`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.servers import free_port


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: slow reliability runs, only with `pytest -m soak` (make soak)")


def pytest_collection_modifyitems(config, items):
    if "soak" in (config.getoption("markexpr") or ""):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("soak") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# Throwaway Valkey ---------------------------------------------------------------------------


# Throwaway PostgreSQL -----------------------------------------------------------------------


def _pg_binary(name):
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb + pg_ctl, as scripts/with_services.py does), so
    the test can stop and start it under a running server."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.data = self.folder / "pgdata"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/halobestie"
        self.pg_ctl = _pg_binary("pg_ctl")
        self.initdb = _pg_binary("initdb")
        self.run_as = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.folder, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command):
        subprocess.run(
            [*self.run_as, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def create(self):
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(
            _pg_binary("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "halobestie",
        )  # fmt: skip

    def start(self):
        self._run(
            self.pg_ctl, "-D", str(self.data), "-l", str(self.folder / "pg.log"), "-w",
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )  # fmt: skip

    def stop(self, mode="fast"):
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self):
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip


@pytest.fixture
def throwaway_postgres():
    if not (_pg_binary("initdb") and _pg_binary("pg_ctl")):
        pytest.fail("needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)")
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    folder = tempfile.mkdtemp(prefix="halobestie-pgfault-")
    os.chmod(folder, 0o777)
    server = ThrowawayPostgres(folder)
    try:
        server.create()
        yield server
    finally:
        server.destroy()
        shutil.rmtree(folder, ignore_errors=True)


def migrate(env):
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=settings.BASE_DIR, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


# Traffic ------------------------------------------------------------------------------------


@dataclass
class Answer:
    at: float
    path: str
    status: int  # 0: no HTTP answer (connection refused, timeout)
    seconds: float
    code: str | None


@dataclass
class Traffic:
    """Requests in a loop on a thread; every answer is recorded."""

    base_url: str
    requests_: list  # [(path, headers)]
    timeout: float = 15.0
    answers: list = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.http = requests.Session()

    def _run(self):
        index = 0
        while not self._stop.is_set():
            path, headers = self.requests_[index % len(self.requests_)]
            index += 1
            started = time.monotonic()
            try:
                response = self.http.get(self.base_url + path, headers=headers, timeout=self.timeout)
                code = None
                if response.status_code >= 400:
                    try:
                        code = response.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = "<not the envelope>"
                status = response.status_code
            except requests.RequestException:
                status, code = 0, None
            self.answers.append(Answer(started, path, status, time.monotonic() - started, code))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def since(self, moment):
        return [a for a in self.answers if a.at >= moment]

    def wait_for(self, predicate, timeout):
        """Seconds until an answer started after now satisfies predicate."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if any(predicate(a) for a in self.since(started)):
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError("traffic never reached the expected state")
