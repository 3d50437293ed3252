"""Bench (issue 22): 500 simultaneous paid sessions placed by two public processes.

`python -m bench.dispatch` (also `make bench`, name `dispatch`). Its own database
(`BENCH_DISPATCH_DB`, default `halobestie_bench_dispatch`: dropped, created, migrated) and Valkey
prefix. 100 Besties of capacity 3 are online; 500 sessions wait for payment. Two worker processes
(`python -m bench.dispatch worker …`, each a Django process with the production settings and
database pool, `BENCH_DISPATCH_THREADS` threads each) start at the same instant and mark their
half of the sessions paid through `lifecycle.session_mark_paid` — the service a payment callback
runs in a public process, which dispatches the queue after commit. Placed = offered or queued;
the clock stops when every session is placed and every free slot is filled (300 offered, 200
queued), read from Postgres. Overbooked = a Bestie holding more offered/active sessions than
capacity; double offers = a session with two offers.
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSIONS = int(os.environ.get("BENCH_DISPATCH_SESSIONS", "500"))
MITRAS = int(os.environ.get("BENCH_DISPATCH_MITRAS", "100"))
CAPACITY = 3
PROCESSES = 2
THREADS = int(os.environ.get("BENCH_DISPATCH_THREADS", "8"))
TARGET_SECONDS = 5.0
DB = os.environ.get("BENCH_DISPATCH_DB", "halobestie_bench_dispatch")
PREFIX = os.environ.get("BENCH_DISPATCH_VALKEY_PREFIX", "benchdispatch:")
LAYER_PREFIX = os.environ.get("BENCH_DISPATCH_LAYER_PREFIX", "benchdispatch-layer")
PYSPY = os.environ.get("BENCH_DISPATCH_PYSPY", "")  # path of py-spy: record both workers
PYSPY_FLAGS = os.environ.get("BENCH_DISPATCH_PYSPY_FLAGS", "").split()  # e.g. --gil (CPU in Python only)
APP_NAME = "bench-dispatch-worker"  # the workers' Postgres application_name (their backends' CPU)
SETTLE_SECONDS = 1.0  # after the calls returned: the after-commit work still running finishes


def _backends_cpu_seconds(connection, app_name):
    """CPU seconds (user + system) of this machine's Postgres backends named `app_name`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app_name])
        pids = [row[0] for row in cursor.fetchall()]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # Postgres on another machine, or the backend just ended
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _urls(db):
    admin = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(admin)
    valkey = os.environ.get("VALKEY_URL") or "redis://127.0.0.1:6379/0"
    return admin, urlunsplit(parts._replace(path="/" + db)), valkey


def env_for(db, **overrides):
    """The environment of every Django process of this bench (production settings, own db)."""
    _, url, valkey = _urls(db)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        VALKEY_URL=valkey,
        VALKEY_KEY_PREFIX=PREFIX,
        CHANNEL_LAYER_PREFIX=LAYER_PREFIX,
        TEST_DATABASE_NAME="",
        DEBUG="false",
        TESTING="false",
        DJANGO_SECRET_KEY=os.environ.get("BENCH_SECRET", "bench-dispatch-secret-" + "x" * 40),
        AUTH_JWT_SECRET=os.environ.get("BENCH_JWT_SECRET", "bench-dispatch-jwt-" + "y" * 40),
        AUTH_ACCESS_TOKEN_SECONDS="86400",
        XENDIT_ENABLED="false",
        PAYMENTS_LOCAL_CHECKOUT_UNSAFE="true",
        FAZPASS_ENABLED="false",
        API_THROTTLE_READS_PER_MINUTE="0",
        API_THROTTLE_WRITES_PER_MINUTE="0",
        REALTIME_MAX_SOCKETS_PER_USER="1000",
        PUSH_ENABLED="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        DRAIN_SECONDS="0",
        GRACEFUL_SHUTDOWN_SECONDS="3",
        METRICS_PORT="0",
        DJANGO_SETTINGS_MODULE="halobestie.settings",
        DATABASE_POOL="true",  # as in production (the runner's own process turns it off)
    )
    env.pop("PYTEST_ADDOPTS", None)
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def recreate_database(db):
    import psycopg

    assert "bench" in db  # never a test or production database
    admin, _, _ = _urls(db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env_for(db),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def clear_valkey(patterns=(f"{PREFIX}*", f"{LAYER_PREFIX}*")):
    import redis

    _, _, valkey = _urls(DB)
    client = redis.Redis.from_url(valkey)
    for pattern in patterns:
        names = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])


def setup_django(db, **overrides):
    os.environ.update(env_for(db, **overrides))
    sys.path.insert(0, ROOT)
    import django

    django.setup()


def _seed():
    from django.test import override_settings

    from halobestie.accounts.models import Role, User
    from halobestie.runtime.services import runtime_config_update
    from mitras.services import mitra_create, mitra_set_online
    from sessions_app import lifecycle

    # Presence is not what this measures: heartbeats stay fresh for the whole run on a busy machine.
    runtime_config_update(values={"heartbeat_ttl_seconds": 600})
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # bench accounts never log in
    with override_settings(PASSWORD_HASHERS=fast):
        mitras = []
        for number in range(MITRAS):
            mitra = mitra_create(
                phone=f"+62813{number:08d}",
                password="bench-mitra-123",
                display_name=f"Bestie D{number}",
                capacity=CAPACITY,
            )
            mitras.append(mitra_set_online(mitra=mitra, is_online=True))
        sessions = []
        for number in range(SESSIONS):
            client = User.objects.create_user(
                phone=f"+62814{number:08d}", role=Role.CLIENT, display_name=f"Klien D{number}"
            )
            sessions.append(lifecycle.session_create(client=client, package_code="curhat-15"))
    return [m.id for m in mitras], [str(s.id) for s in sessions]


def _counts(ids):
    from django.db.models import Count

    from sessions_app.models import ChatSession

    return dict(
        ChatSession.objects.filter(id__in=ids)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )


def _tally_rounds():
    """Counts, in this worker, the dispatch rounds (`queue_dispatch` calls) and the queue
    broadcasts, with their threads' CPU seconds (a diagnostic: private names of matching.py,
    skipped when they change)."""
    from sessions_app import matching

    tally = {"rounds": 0, "rounds_cpu_s": 0.0, "broadcasts": 0, "broadcasts_cpu_s": 0.0}

    def counted(function, name):
        def run(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                tally[name] += 1
                tally[f"{name}_cpu_s"] += time.thread_time() - started

        return run

    matching.queue_dispatch = counted(matching.queue_dispatch, "rounds")
    spaced = getattr(matching, "_queue_positions_spaced", None)
    if spaced is not None and hasattr(spaced, "coalesced"):
        spaced.coalesced.job = counted(spaced.coalesced.job, "broadcasts")
    return tally


def worker(args):
    """One public process: THREADS threads mark `ids` paid from `start_at` (wall clock)."""
    ids_path, start_at, out_path = args[0], float(args[1]), args[2]
    setup_django(DB)
    from django.db import connection

    from sessions_app import lifecycle

    ids = json.loads(Path(ids_path).read_text())
    tally = _tally_rounds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_start = usage.ru_utime + usage.ru_stime  # Django set up: only the payments are counted
    connection.ensure_connection()
    postgres_cpu_at_start = _backends_cpu_seconds(connection, os.environ.get("PGAPPNAME", ""))
    connection.close()
    errors = []
    chunks = [ids[i::THREADS] for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    profiles = []

    def run(chunk):
        if os.environ.get("BENCH_DISPATCH_PROFILE"):
            import cProfile

            profiles.append(cProfile.Profile())
            profiles[-1].enable()
        try:
            barrier.wait()
            delay = start_at - time.time()
            if delay > 0:
                time.sleep(delay)
            for session_id in chunk:
                lifecycle.session_mark_paid(session_id=session_id)
                connection.close()  # back to the pool, as a request thread does
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(run, chunks))
    finished = time.time()
    time.sleep(SETTLE_SECONDS)
    try:
        postgres_cpu = _backends_cpu_seconds(connection, os.environ.get("PGAPPNAME", ""))
        postgres_cpu -= postgres_cpu_at_start
    finally:
        connection.close()
    if profiles:
        import pstats

        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(*profiles)
        stats.dump_stats(out_path + ".prof")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(out_path, "w") as file:
        json.dump(
            {
                "finished_at": finished,
                "errors": errors[:5],
                "cpu_s": usage.ru_utime + usage.ru_stime - cpu_at_start,
                "postgres_cpu_s": postgres_cpu,
                **tally,
            },
            file,
        )


def dispatch_bench(*, log=print, db=DB):
    """Returns the result dict (also written to bench/results/dispatch.json by `main`)."""
    from django.db import connection
    from django.db.models import Count, Q

    from mitras.models import Mitra
    from sessions_app.models import SessionOffer

    mitra_ids, ids = _seed()
    connection.close()
    work = os.environ.get("BENCH_LOG_DIR", "/tmp/halobestie-bench-logs")
    os.makedirs(work, exist_ok=True)
    halves = [ids[i::PROCESSES] for i in range(PROCESSES)]
    start_at = time.time() + 6  # both processes are up (Django set up) by then
    children = []
    recorders = []
    for index, half in enumerate(halves):
        ids_path = os.path.join(work, f"dispatch-ids-{index}.json")
        out_path = os.path.join(work, f"dispatch-out-{index}.json")
        with open(ids_path, "w") as file:
            json.dump(half, file)
        command = [sys.executable, "-m", "bench.dispatch", "worker", ids_path, str(start_at), out_path]
        child = subprocess.Popen(command, cwd=ROOT, env=env_for(db, PGAPPNAME=f"{APP_NAME}-{index}"))
        children.append((child, out_path))
        if PYSPY:  # sampled stacks of the whole worker (every thread): collapsed stacks
            output = os.path.join(work, f"dispatch-pyspy-{index}.txt")
            record = [PYSPY, "record", "--pid", str(child.pid), "--rate", "50", "--format", "raw"]
            record += ["--output", output, "--nonblocking", *PYSPY_FLAGS]
            recorders.append(subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    log(f"dispatch: {len(ids)} sessions paid at once by {PROCESSES} processes × {THREADS} threads")
    slots = MITRAS * CAPACITY
    want_offered = min(slots, len(ids))
    placed_at = None
    deadline = start_at + 120
    while time.time() < deadline:
        counts = _counts(ids)
        if counts.get("offered", 0) >= want_offered and counts.get("pending_payment", 0) == 0:
            placed_at = time.time()
            break
        if all(child.poll() is not None for child, _ in children) and time.time() > start_at + 60:
            break
        time.sleep(0.02)
    errors = []
    finished = []
    worker_cpu = []
    postgres_cpu = []
    tally = {"rounds": 0, "rounds_cpu_s": 0.0, "broadcasts": 0, "broadcasts_cpu_s": 0.0}
    for child, out_path in children:
        child.wait(timeout=180)
        try:
            out = json.loads(Path(out_path).read_text())
            errors += out["errors"]
            finished.append(out["finished_at"])
            worker_cpu.append(out.get("cpu_s", 0.0))
            postgres_cpu.append(out.get("postgres_cpu_s", 0.0))
            for name in tally:
                tally[name] += out.get(name, 0)
        except (OSError, ValueError):
            errors.append(f"worker exited with {child.returncode}")
    for recorder in recorders:
        recorder.wait(timeout=60)
    counts = _counts(ids)
    loads = (
        Mitra.objects.filter(id__in=mitra_ids)
        .annotate(held=Count("chat_sessions", filter=Q(chat_sessions__status__in=["offered", "active"])))
        .values_list("held", "capacity", "load")
    )
    overbooked = sum(1 for held, capacity, _ in loads if held > capacity)
    load_mismatch = sum(1 for held, _, load in loads if held != load)
    double = (
        SessionOffer.objects.filter(session_id__in=ids)
        .values("session_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    seconds = round(placed_at - start_at, 2) if placed_at else None
    return {
        "sessions": len(ids),
        "mitras": MITRAS,
        "capacity": CAPACITY,
        "processes": PROCESSES,
        "threads_per_process": THREADS,
        "seconds": seconds,
        "calls_returned_s": round(max(finished) - start_at, 2) if finished else None,
        # CPU seconds of the two worker processes (from the release until their calls returned,
        # frames sent after that included): comparable on a busy machine, where seconds are not.
        "workers_cpu_s": round(sum(worker_cpu), 2),
        # CPU seconds of the Postgres backends serving the workers' connections (the pool's).
        "postgres_cpu_s": round(sum(postgres_cpu), 2),
        # dispatch rounds and queue broadcasts of both workers, with their CPU (part of the above)
        **{name: round(value, 2) for name, value in tally.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "statuses": counts,
        "offered": counts.get("offered", 0),
        "queued": counts.get("matching", 0),
        "overbooked_mitras": overbooked,
        "load_column_mismatches": load_mismatch,
        "double_offers": double,
        "errors": errors[:5],
        "target_seconds": TARGET_SECONDS,
        "met": seconds is not None
        and seconds <= TARGET_SECONDS
        and overbooked == 0
        and double == 0
        and not errors,
    }


def target_rows(result):
    """(name, measured, MET/MISSED) rows for docs/PERFORMANCE.md."""
    seconds = result.get("seconds")
    ratio = f"{seconds / TARGET_SECONDS:.2f}× the limit" if seconds else "not all placed"
    return [
        (
            f"{result['sessions']} simultaneous paid sessions placed (offered or queued) ≤ 5 s, "
            f"0 overbooked, {result['processes']} public processes",
            f"{seconds} s ({ratio}); {result['offered']} offered + {result['queued']} queued; "
            f"{result['overbooked_mitras']} overbooked, {result['double_offers']} double offers",
            "MET" if result["met"] else "MISSED",
        )
    ]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2:5])
        return 0
    from bench import docrows

    clear_valkey()
    recreate_database(DB)
    setup_django(DB)
    result = dispatch_bench()
    clear_valkey()
    docrows.save("dispatch", result)
    docrows.write_rows("dispatch", target_rows(result))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
