"""Bench: `manage.py import_legacy` of a generated export holding 1,000,000 messages (20,000
sessions of 50, 10,000 clients, 500 Besties), its wall time and the command's peak RSS, against
the memory bound of docs/cutover.md. Its own database (halobestie_bench_legacy, dropped and
created), so it runs alone as well as inside `make bench`:

    python scripts/with_services.py -- .venv/bin/python -m bench.legacy_import
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench import procs

ROOT = procs.ROOT
DATABASE = "halobestie_bench_legacy"
CLIENTS, BESTIES, SESSIONS, MESSAGES_PER_SESSION = 10_000, 500, 20_000, 50
MEMORY_BOUND_MIB = 512


def legacy_import(*, admin_url, server_env, say=print) -> dict:
    """`server_env(**overrides)` is the bench runner's environment of a Django process."""
    assert DATABASE == "halobestie_bench_legacy"  # never anything else
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + DATABASE))
    env = server_env(DATABASE_URL=url, DATABASE_POOL="false", LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="legacy-export-") as directory:
        say(f"legacy import: writing an export of {SESSIONS * MESSAGES_PER_SESSION:,} messages")
        generate = (
            "import sys, json, django; django.setup(); from halobestie.legacy.sample import write_dataset; "
            "print(json.dumps(write_dataset(sys.argv[1], clients=int(sys.argv[2]), besties=int(sys.argv[3]), "
            "sessions=int(sys.argv[4]), messages_per_session=int(sys.argv[5]))))"
        )
        subprocess.run(
            [sys.executable, "-c", generate, directory, str(CLIENTS), str(BESTIES), str(SESSIONS),
             str(MESSAGES_PER_SESSION)],
            cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "halobestie.settings"}, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        size_mib = sum(f.stat().st_size for f in Path(directory).iterdir()) / 2**20
        runs = {}
        for label, args in (("import", []), ("second_run", []), ("dry_run", ["--dry-run"])):
            say(f"legacy import: {label}")
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "manage.py", "import_legacy", directory, *args],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            seconds = time.perf_counter() - started
            rss = float(re.search(r"peak memory \(RSS\): (\d+) MiB", out).group(1))
            messages = next(line for line in out.splitlines() if line.startswith("messages.jsonl")).split()
            runs[label] = {
                "seconds": round(seconds, 1),
                "peak_rss_mib": rss,
                "messages_read": int(messages[1]),
                "messages_created": int(messages[5]),
                "checksums_match": "checksums: files and database match" in out,
            }
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    return {
        "messages": SESSIONS * MESSAGES_PER_SESSION,
        "sessions": SESSIONS,
        "clients": CLIENTS,
        "besties": BESTIES,
        "export_mib": round(size_mib, 1),
        "memory_bound_mib": MEMORY_BOUND_MIB,
        "within_bound": all(r["peak_rss_mib"] <= MEMORY_BOUND_MIB for r in runs.values()),
        **runs,
    }


if __name__ == "__main__":
    from bench.runner import ADMIN_URL, save, server_env  # the runner imports this module too

    result = legacy_import(admin_url=ADMIN_URL, server_env=server_env)
    save("legacy_import", result)
    print(result)
    sys.exit(0 if result["within_bound"] else 1)
