"""Server processes for the bench: started with the bench's environment, waited for, always
stopped (atexit and on SIGINT/SIGTERM), and their CPU and memory read through psutil."""

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/halobestie-bench-logs"))
_running: list[subprocess.Popen] = []


_handed_out = set()


def free_port():
    """A free port: from BENCH_PORTS (e.g. `4600-4699`) when set, else any the kernel gives."""
    span = os.environ.get("BENCH_PORTS", "")
    if span:
        low, high = (int(p) for p in span.split("-"))
        for port in range(low, high + 1):
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
        _handed_out.clear()  # all handed out once: servers stopped since free them again
        return free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(name, command, *, env, port, health_path=None, timeout=60):
    """Start `command`, wait until `port` accepts (and `health_path` answers 200), return the
    process. Its output goes to LOG_DIR/<name>.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.bench_log = log
    process.bench_name = name
    _running.append(process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: see {LOG_DIR / name}.log")
        if _port_open(port) and (health_path is None or _healthy(port, health_path)):
            return process
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{name} did not come up in {timeout}s: see {LOG_DIR / name}.log")
        time.sleep(0.1)


def _healthy(port, path):
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(process, timeout=15):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in _running:
        _running.remove(process)
    log = getattr(process, "bench_log", None)
    if log is not None:
        log.close()


def stop_all():
    for process in list(reversed(_running)):
        stop(process)


def _on_signal(signum, frame):
    stop_all()
    sys.exit(128 + signum)


def install_cleanup():
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def uvicorn_cmd(app, port):
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--no-access-log",
    ]


def serve_cmd(port):
    """The production launcher (uvicorn with the graceful drain)."""
    return [sys.executable, "-m", "halobestie.serve", "public", "--host", "127.0.0.1", "--port", str(port)]


def daphne_cmd(app, port):
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]


def cpu_seconds(pids):
    """User + system CPU seconds of each pid and its children so far."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            total += times.user + times.system
            for child in proc.children(recursive=True):
                t = child.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_bytes(pid):
    return psutil.Process(pid).memory_info().rss
