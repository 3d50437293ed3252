"""Development supervisor for `make run`: the public and internal listeners (uvicorn through
`python -m halobestie.serve`) and, with VALKEY_URL set, the scheduler, in one terminal. Ctrl-C
(or SIGTERM) stops them all; if one dies, all stop.

Without VALKEY_URL (SCHEDULER_IN_PROCESS, the embedded default) the public listener runs the
scheduler itself: its events must reach the sockets through the public process's in-memory
channel layer, so no scheduler process is started.

Production runs each process as its own container (see DEPLOY.md); this is only for local work.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def has_command(name):
    return any(
        (ROOT / app / "management" / "commands" / f"{name}.py").exists()
        for app in ("halobestie", "sessions_app", "mitras", "payments")
    )


def scheduler_in_process():
    """settings.SCHEDULER_IN_PROCESS, read the way the public process reads it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "halobestie.settings")
    sys.path.insert(0, str(ROOT))
    from django.conf import settings

    return settings.SCHEDULER_IN_PROCESS


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--public-host", default=os.environ.get("PUBLIC_HOST", "127.0.0.1"))
    parser.add_argument("--public-port", type=int, default=3000)
    parser.add_argument("--internal-host", default=os.environ.get("INTERNAL_HOST", "127.0.0.1"))
    parser.add_argument("--internal-port", type=int, default=3001)
    args = parser.parse_args()

    python = sys.executable
    # The same launcher as production (python -m halobestie.serve: JSON logs, graceful drain).
    commands = {
        "public": [python, "-m", "halobestie.serve", "public", "--host", args.public_host,
                   "--port", str(args.public_port)],
        "internal": [python, "-m", "halobestie.serve", "internal", "--host", args.internal_host,
                     "--port", str(args.internal_port)],
    }  # fmt: skip
    if scheduler_in_process():
        print("scheduler: inside the public listener (SCHEDULER_IN_PROCESS)", flush=True)
    elif has_command("run_scheduler"):
        commands["scheduler"] = [python, "manage.py", "run_scheduler"]

    # No load balancer to wait for locally: stop at once unless DRAIN_SECONDS says otherwise.
    env = {**os.environ, "DRAIN_SECONDS": os.environ.get("DRAIN_SECONDS", "0")}
    processes = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in commands.items()}
    stopping = False

    def stop(*_):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the rest", file=sys.stderr)
                    stop()
                    break
            time.sleep(0.5)
    finally:
        stop()
        deadline = time.monotonic() + 30
        for process in processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
