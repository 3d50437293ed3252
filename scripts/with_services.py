"""Run a command with real PostgreSQL and Valkey/Redis available, then clean up.

Order of preference for each service:
1. the URL already in the environment (DATABASE_URL / VALKEY_URL);
2. a server answering on 127.0.0.1's default port (5432 / 6379);
3. a throwaway server started from local binaries (initdb + pg_ctl; valkey-server or
   redis-server) in a temporary folder, stopped and deleted afterwards.
With none of these, one clear line says what to install, and the exit code is 2.

Usage: python scripts/with_services.py -- pytest -q
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def port_answers(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(*names):
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for pattern in ("/usr/lib/postgresql/*/bin",):
        for folder in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            for name in names:
                if (folder / name).exists():
                    return str(folder / name)
    return None


def start_postgres(workdir, cleanups):
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if not (initdb and pg_ctl):
        return None
    data = Path(workdir) / "pgdata"
    port = free_port()
    run_as = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        if not _user_exists("postgres"):
            return None
        shutil.chown(workdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *run_as,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(Path(workdir) / "pg.log"),
            "-w",
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cleanups.append(
        lambda: subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-m", "fast", "stop"], stdout=subprocess.DEVNULL, check=False
        )
    )
    return f"postgres://postgres@127.0.0.1:{port}/postgres"


def _user_exists(name):
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def start_valkey(workdir, cleanups):
    server = find_binary("valkey-server", "redis-server")
    if not server:
        return None
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cleanups.append(lambda: (process.terminate(), process.wait(10)))
    for _ in range(50):
        if port_answers(port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.1)
    return None


def main(argv):
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: with_services.py -- COMMAND...", file=sys.stderr)
        return 2
    env = dict(os.environ)
    cleanups = []
    workdir = tempfile.mkdtemp(prefix="halobestie-services-")
    os.chmod(workdir, 0o777)
    try:
        if not env.get("DATABASE_URL"):
            if port_answers(5432):
                env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
            else:
                url = start_postgres(workdir, cleanups)
                if not url:
                    print(
                        "make test needs PostgreSQL: set DATABASE_URL, run a server on "
                        "127.0.0.1:5432, or install it (apt-get install postgresql).",
                        file=sys.stderr,
                    )
                    return 2
                env["DATABASE_URL"] = url
        if not env.get("VALKEY_URL"):
            if port_answers(6379):
                env["VALKEY_URL"] = "redis://127.0.0.1:6379/0"
            else:
                url = start_valkey(workdir, cleanups)
                if not url:
                    print(
                        "make test needs Valkey or Redis: set VALKEY_URL, run a server on "
                        "127.0.0.1:6379, or install one (apt-get install redis-server).",
                        file=sys.stderr,
                    )
                    return 2
                env["VALKEY_URL"] = url
        return subprocess.call(argv, env=env)
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # cleanup must not hide the test result
                print(f"cleanup failed: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
