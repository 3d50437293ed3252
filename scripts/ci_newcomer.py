"""CI: the newcomer's path, as the README tells it. Exits non-zero on any failure.

1. A fresh clone of this repository's HEAD (committed work only) in a temporary folder, with its
   own new virtualenv made by `make run` itself (so only requirements.txt is installed).
2. The embedded default (no DATABASE_URL, no VALKEY_URL), RUNS times: `make run` in the
   background, wait for /healthz, `make demo`, stop it as Ctrl-C does, then delete var/.
3. PostgreSQL + Valkey: `make run` on a database of its own (halobestie_ci_run, made anew) and
   Valkey prefixes of its own, plus a second public process; `scripts/demo.py` with the client on
   one public process and the mitra on the other (events cross through Valkey), then stop.

A run fails on a demo failure, on a process that does not come up or does not stop, or on a
server log line saying "database is locked", a 5xx answer, or an ERROR.

    python scripts/with_services.py -- python scripts/ci_newcomer.py [--runs 3] [--no-postgres]

(with_services.py provides DATABASE_URL / VALKEY_URL for step 3; step 2 removes them.)
"""

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
CI_DATABASE = "halobestie_ci_run"
CI_PREFIX = "ci-newcomer:"
# Variables that would take `make run` off the embedded default, or into test mode.
NOT_INHERITED = (
    "DATABASE_URL", "VALKEY_URL", "VALKEY_KEY_PREFIX", "CHANNEL_LAYER_PREFIX", "SCHEDULER_IN_PROCESS",
    "TESTING", "TEST_DATABASE_NAME", "DJANGO_SETTINGS_MODULE", "SQLITE_PATH", "PUBLIC_PORT",
    "INTERNAL_PORT", "VIRTUAL_ENV",
)  # fmt: skip


class Failed(Exception):
    pass


def say(text):
    print(f"[newcomer] {text}", flush=True)


# Listening ports are picked below Linux's ephemeral range (32768–60999 by default): a port the
# kernel handed out as "free" there can be taken as the local port of some process's outgoing
# connection (Postgres, Valkey, a test client) before the server binds it, and the run failed with
# "address already in use" now and then.
_LISTEN_PORTS = range(20000, 32000)


def _bindable(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    while True:
        port = random.choice(_LISTEN_PORTS)
        if _bindable(port):
            return port


PORT_BASE = None  # --port-base: fixed ports instead of free ones


def two_free_ports(offset=0):
    if PORT_BASE is not None:
        return PORT_BASE + offset, PORT_BASE + offset + 1
    while True:
        port = free_port()
        if _bindable(port + 1):
            return port, port + 1


def healthy(base_url):
    try:
        with urlopen(f"{base_url}/healthz", timeout=2) as response:
            return response.status == 200
    except (URLError, OSError):
        return False


class Background:
    """A command in its own process group with its output in a log file."""

    def __init__(self, name, command, *, cwd, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self, base_url, timeout):
        deadline = time.monotonic() + timeout
        while not healthy(base_url):
            if self.process.poll() is not None:
                code = self.process.returncode
                raise Failed(f"{self.name} exited with {code} before {base_url}/healthz answered")
            if time.monotonic() > deadline:
                raise Failed(f"{base_url}/healthz did not answer within {timeout} s")
            time.sleep(0.5)

    def stop(self, timeout=60):
        """Ctrl-C as in a terminal (SIGINT to the whole group); then nothing may be left."""
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    raise Failed(f"{self.name} did not stop within {timeout} s of Ctrl-C") from None
            deadline = time.monotonic() + timeout
            while True:  # the group's other processes (the listeners) must be gone too
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    break
                if time.monotonic() > deadline:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    raise Failed(f"processes of {self.name} still running {timeout} s after Ctrl-C")
                time.sleep(0.2)
        finally:
            self.log.close()

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def check_log(path):
    """Fail on a log line that says the run went wrong, though the demo passed."""
    bad = []
    for line in Path(path).read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        failed = record is not None and (
            record.get("level") in ("ERROR", "CRITICAL") or int(record.get("status") or 0) >= 500
        )
        if failed or "database is locked" in line:
            bad.append(line)
    if bad:
        raise Failed(f"{path}: {len(bad)} bad log line(s):\n" + "\n".join(bad[:20]))


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return
    print(f"--- last lines of {path}", flush=True)
    print("\n".join(text[-lines:]), flush=True)


def run(command, *, cwd, env, timeout, log_path):
    with open(log_path, "wb") as log:
        result = subprocess.run(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
        )
    if result.returncode != 0:
        tail(log_path)
        raise Failed(f"{' '.join(command)} exited with {result.returncode}")


def embedded_env():
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def embedded_run(clone, logs, number, *, first):
    public, internal = two_free_ports()
    say(f"embedded default, run {number}: make run PUBLIC_PORT={public} INTERNAL_PORT={internal}")
    env = embedded_env()
    started = time.monotonic()
    server = Background(
        "make run", ["make", "run", f"PUBLIC_PORT={public}", f"INTERNAL_PORT={internal}"],
        cwd=clone, env=env, log_path=logs / f"embedded-{number}-run.log",
    )  # fmt: skip
    try:
        # The first run makes the virtualenv and installs requirements.txt.
        server.wait_healthy(f"http://127.0.0.1:{public}", timeout=900 if first else 180)
        say(f"  /healthz after {time.monotonic() - started:.1f} s; make demo")
        run(["make", "demo", f"PUBLIC_PORT={public}"], cwd=clone, env=env, timeout=300,
            log_path=logs / f"embedded-{number}-demo.log")  # fmt: skip
        server.stop()
    except BaseException:
        server.kill()
        tail(server.log_path)
        raise
    check_log(server.log_path)
    say(f"  run {number} passed")


def postgres_run(clone, logs):
    base_db = os.environ.get("DATABASE_URL")
    valkey = os.environ.get("VALKEY_URL")
    if not base_db or not valkey:
        raise Failed("the PostgreSQL + Valkey run needs DATABASE_URL and VALKEY_URL (with_services.py)")
    url = urlsplit(base_db)
    database_url = urlunsplit(url._replace(path=f"/{CI_DATABASE}"))
    python = str(clone / ".venv" / "bin" / "python")
    admin_url = urlunsplit(url._replace(path="/postgres"))
    fresh_state = f"""
import psycopg, redis
with psycopg.connect({admin_url!r}, autocommit=True) as conn:
    conn.execute('DROP DATABASE IF EXISTS {CI_DATABASE} WITH (FORCE)')
    if {{drop_only}} is False:
        conn.execute('CREATE DATABASE {CI_DATABASE}')
client = redis.Redis.from_url({valkey!r})
keys = list(client.scan_iter(match={CI_PREFIX + "*"!r}, count=1000))
if keys:
    client.delete(*keys)
"""
    subprocess.run([python, "-c", fresh_state.format(drop_only=False)], check=True, timeout=60)
    public, internal = two_free_ports(2)
    second = PORT_BASE + 4 if PORT_BASE is not None else free_port()
    env = {
        **embedded_env(),
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey,
        "VALKEY_KEY_PREFIX": CI_PREFIX,
        "CHANNEL_LAYER_PREFIX": "halobestie-" + CI_PREFIX.rstrip(":"),
    }
    say(f"PostgreSQL ({CI_DATABASE}) + Valkey: make run PUBLIC_PORT={public}, a second public on {second}")
    server = Background(
        "make run", ["make", "run", f"PUBLIC_PORT={public}", f"INTERNAL_PORT={internal}"],
        cwd=clone, env=env, log_path=logs / "postgres-run.log",
    )  # fmt: skip
    other = None
    try:
        server.wait_healthy(f"http://127.0.0.1:{public}", timeout=300)
        # The second public process: the same launcher with `make run`'s development settings.
        other_env = {
            **env, "DEBUG": "true", "FAZPASS_ENABLED": "false", "XENDIT_ENABLED": "false",
            "OTP_TEST_PHONES": "+6281200000001", "PUBLIC_BASE_URL": f"http://127.0.0.1:{public}",
            "DRAIN_SECONDS": "0",
        }  # fmt: skip
        other = Background(
            "second public process",
            [python, "-m", "halobestie.serve", "public", "--host", "127.0.0.1", "--port", str(second)],
            cwd=clone, env=other_env, log_path=logs / "postgres-public-2.log",
        )  # fmt: skip
        other.wait_healthy(f"http://127.0.0.1:{second}", timeout=120)
        say("  demo: client on the first public process, mitra on the second")
        demo = [python, "scripts/demo.py", "--base-url", f"http://127.0.0.1:{public}",
                "--mitra-base-url", f"http://127.0.0.1:{second}"]  # fmt: skip
        run(demo, cwd=clone, env=env, timeout=300, log_path=logs / "postgres-demo.log")
        other.stop()
        server.stop()
    except BaseException:
        for background in (other, server):
            if background is not None:
                background.kill()
                tail(background.log_path)
        raise
    finally:
        subprocess.run([python, "-c", fresh_state.format(drop_only=True)], timeout=60)
    check_log(server.log_path)
    check_log(other.log_path)
    say("  PostgreSQL + Valkey run passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="embedded-default runs (default 3)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL + Valkey run")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the logs")
    parser.add_argument("--port-base", type=int, default=None, help="ports BASE..BASE+4 (default: free ones)")
    args = parser.parse_args()
    global PORT_BASE
    PORT_BASE = args.port_base
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="halobestie-newcomer-"))
    clone, logs = work / "halobestie", work / "logs"
    logs.mkdir()
    try:
        say(f"fresh clone of {ROOT} (HEAD) in {clone}")
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
        for number in range(1, args.runs + 1):
            subprocess.run(["rm", "-rf", str(clone / "var")], check=True)
            embedded_run(clone, logs, number, first=number == 1)
        if not args.no_postgres:
            postgres_run(clone, logs)
    except (Failed, subprocess.SubprocessError) as exc:
        say(f"FAILED: {exc}")
        say(f"logs kept in {logs}")
        return 1
    say(f"all passed in {time.monotonic() - started:.0f} s")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
