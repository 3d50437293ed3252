"""The bench runner: `python -m bench` (`make bench`; `BENCH_QUICK=1 make bench` for ~3 minutes).

Order: machine facts → bench database (dropped, created, migrated through manage.py) → data →
1. chat (ours on uvicorn, floor relay, bare Channels relay; N sessions; rate sweep) →
2. ASGI servers (ours on daphne) → 3. beacon (wrk) → 4. assignment → 5. reseed → 6. idle memory →
7. legacy import (1,000,000 messages, peak RSS; bench/legacy_import.py, its own database) →
8. wait estimate (a simulated day of arrivals, no database; bench/wait_estimate.py).
Each result goes to bench/results/<name>.json (bench/results/quick/ with BENCH_QUICK=1), then a
table, the targets and bench/results/chat_latency.png. Server processes are always stopped.
"""

import json
import os
import platform
import re
import resource
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from bench import procs, reads, wait_estimate
from bench.legacy_import import legacy_import

ROOT = procs.ROOT
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
RESULTS = ROOT / "bench" / "results" / ("quick" if QUICK else "")
# Overridable so that two benches on one machine do not share (and drop) one database.
BENCH_DB = os.environ.get("BENCH_DATABASE_NAME", "halobestie_bench")
# Overridable (with BENCH_DATABASE_NAME) so that two benches can share one Valkey.
PREFIX = os.environ.get("BENCH_VALKEY_PREFIX", "bench:")
LAYER_PREFIX = os.environ.get("BENCH_CHANNEL_LAYER_PREFIX", "bench-layer")
PY = sys.executable

if QUICK:
    CHAT_NS = [100, 500]
    STEP_SECONDS = 6
    SWEEP_RATES = [250, 500, 1000, 2000, 3000]
    IDLE_SOCKETS = 2000
    WRK_SECONDS = 5
else:
    CHAT_NS = [100, 500, 1000]
    STEP_SECONDS = 12
    SWEEP_RATES = [250, 500, 750, 1000, 1250, 1500, 2000, 3000, 4000]
    IDLE_SOCKETS = 5000
    WRK_SECONDS = 10
SWEEP_N = 500
# A failing sweep step is run once more before the climb stops (bench/loadgen.py), every system alike.
SWEEP_RETRIES = 1
P99_LIMIT_MS = 100
ASSIGN_SESSIONS, ASSIGN_MITRAS, ASSIGN_CAPACITY, ASSIGN_THREADS = 500, 100, 3, 16
RESEED_MITRAS, RESEED_SESSIONS = 10_000, 50_000

STARTED = time.monotonic()


def say(text):
    print(f"[{time.monotonic() - STARTED:6.0f}s] {text}", flush=True)


# Environment -------------------------------------------------------------------------------------


def _urls():
    admin = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(admin)
    bench = urlunsplit(parts._replace(path="/" + BENCH_DB))
    valkey = os.environ.get("VALKEY_URL") or "redis://127.0.0.1:6379/0"
    return admin, bench, valkey


ADMIN_URL, BENCH_URL, VALKEY_URL = _urls()


def server_env(**overrides):
    """What every Django process of the bench gets: its own database and Valkey prefixes,
    production settings (DEBUG off), long-lived access tokens (the run outlasts 15 minutes),
    per-socket rate limits raised so that the sweep measures the server, not the limiter."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=BENCH_URL,
        VALKEY_URL=VALKEY_URL,
        VALKEY_KEY_PREFIX=PREFIX,
        CHANNEL_LAYER_PREFIX=LAYER_PREFIX,
        TEST_DATABASE_NAME="",
        DEBUG="false",
        TESTING="false",
        DJANGO_SECRET_KEY=_SECRET,
        AUTH_JWT_SECRET=_JWT_SECRET,
        AUTH_ACCESS_TOKEN_SECONDS="86400",
        # The bench pays through services, never a checkout page: Xendit is off on purpose.
        XENDIT_ENABLED="false",
        PAYMENTS_LOCAL_CHECKOUT_UNSAFE="true",
        FAZPASS_ENABLED="false",
        # Load from a handful of users: the per-person limits would measure themselves.
        API_THROTTLE_READS_PER_MINUTE="0",
        API_THROTTLE_WRITES_PER_MINUTE="0",
        REALTIME_MAX_SOCKETS_PER_USER="1000",
        PUSH_ENABLED="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        DRAIN_SECONDS="0",
        GRACEFUL_SHUTDOWN_SECONDS="3",
        METRICS_PORT="0",
        REALTIME_MESSAGES_PER_SECOND="50",
        REALTIME_MESSAGES_BURST="100",
        REALTIME_FRAMES_PER_SECOND="100",
        REALTIME_FRAMES_BURST="200",
    )
    env.pop("PYTEST_ADDOPTS", None)
    env.update({k: str(v) for k, v in overrides.items()})
    return env


_SECRET = "bench-" + secrets.token_hex(24)
_JWT_SECRET = "bench-jwt-" + secrets.token_hex(24)


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    wanted = min(wanted, 1_048_576)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def recreate_database():
    import psycopg

    # Never anything else: the test databases stay untouched.
    assert re.fullmatch(r"halobestie_bench[a-z0-9_]*", BENCH_DB), BENCH_DB
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=server_env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def clear_valkey():
    import redis

    client = redis.Redis.from_url(VALKEY_URL)
    patterns = [f"{PREFIX}*", f"{LAYER_PREFIX}*", f"{PREFIX}floor*", f"{PREFIX}relay*"]
    if PREFIX == "bench:":  # the default run also owns the relays' prefixes
        patterns += ["benchfloor*", "benchrelay*"]
    for pattern in patterns:
        names = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])


def machine_facts():
    import psutil
    import psycopg
    import redis

    with psycopg.connect(ADMIN_URL) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    info = redis.Redis.from_url(VALKEY_URL).info("server")
    cpu_model = ""
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk = shutil.which("wrk")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "postgres": postgres,
        "redis": ("valkey " + info["valkey_version"])
        if "valkey_version" in info
        else "redis " + info["redis_version"],
        "kernel": platform.release(),
        "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        if wrk
        else None,
        "quick": QUICK,
        "date": time.strftime("%Y-%m-%d"),
    }


def setup_django():
    os.environ.update(server_env(DATABASE_POOL="false"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "halobestie.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# Data --------------------------------------------------------------------------------------------


def make_chat_pairs(count):
    """`count` active sessions, each with its own client and mitra (created with the services'
    approach: create_user / mitra_create + mitra_set_online). The sessions are stored in the
    state session_accept leaves them in (bulk: the assignment bench runs the real flow)."""
    from django.contrib.auth.hashers import make_password  # noqa: F401
    from django.test import override_settings
    from django.utils import timezone

    from halobestie.accounts.models import Role, User
    from halobestie.accounts.tokens import tokens_for
    from mitras.services import mitra_create, mitra_set_online
    from sessions_app.models import ChatSession

    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # bench accounts never log in
    clients, mitras = [], []
    with override_settings(PASSWORD_HASHERS=fast):
        for number in range(count):
            clients.append(
                User.objects.create_user(
                    phone=f"+62812{number:08d}", role=Role.CLIENT, display_name=f"Klien {number}"
                )
            )
            mitra = mitra_create(
                phone=f"+62811{number:08d}",
                password="bench-mitra-123",
                display_name=f"Bestie {number}",
                capacity=3,
            )
            mitras.append(mitra_set_online(mitra=mitra, is_online=True))
            if (number + 1) % 250 == 0:
                say(f"  {number + 1}/{count} clients and mitras")
    now = timezone.now()
    sessions = ChatSession.objects.bulk_create(
        [
            ChatSession(
                client=c,
                mitra=m,
                requested_mitra=m,
                allow_any_mitra=False,
                package_code="curhat-15",
                duration_seconds=900,
                price_idr=15000,
                status="active",
                paid_at=now,
                matching_started_at=now,
                offered_at=now,
                accepted_at=now,
                ends_at=now + timedelta(days=1),
            )
            for c, m in zip(clients, mitras, strict=True)
        ]
    )
    return [
        [str(s.id), c.id, tokens_for(c)["access"], m.user_id, tokens_for(m.user)["access"]]
        for s, c, m in zip(sessions, clients, mitras, strict=True)
    ]


# Chat --------------------------------------------------------------------------------------------


def run_loadgen(config, *, label):
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = procs.LOG_DIR
    work.mkdir(parents=True, exist_ok=True)
    config_path, result_path = work / f"{label}.config.json", work / f"{label}.result.json"
    config.setdefault("run_id", uuid.uuid4().hex[:8])
    config_path.write_text(json.dumps(config))
    subprocess.run(
        [PY, "-m", "bench.loadgen", str(config_path), str(result_path)],
        cwd=ROOT,
        check=True,
        env=server_env(),
    )
    return json.loads(result_path.read_text())


def start_pair(system):
    """Two server processes of `system`; returns (processes, client_url, mitra_url, mode)."""
    ports = [procs.free_port(), procs.free_port()]
    started = []
    for index, port in enumerate(ports):
        name = f"{system}-{index}"
        if system == "ours-uvicorn":
            started.append(
                procs.start(name, procs.serve_cmd(port), env=server_env(), port=port, health_path="/healthz")
            )
        elif system == "ours-daphne":
            started.append(
                procs.start(
                    name,
                    procs.daphne_cmd("halobestie.asgi:public_application", port),
                    env=server_env(),
                    port=port,
                    health_path="/healthz",
                )
            )
        elif system == "floor":
            command = [
                PY,
                "-m",
                "bench.floor_relay",
                "--port",
                str(port),
                "--redis",
                VALKEY_URL,
                "--prefix",
                f"{PREFIX}floor:",
            ]
            started.append(procs.start(name, command, env=server_env(), port=port))
        elif system == "channels":
            env = server_env(BENCH_REDIS_URL=VALKEY_URL, BENCH_LAYER_PREFIX=f"{PREFIX}relay")
            started.append(
                procs.start(
                    name,
                    procs.uvicorn_cmd("bench.channels_relay:application", port),
                    env=env,
                    port=port,
                    health_path="/",
                )
            )
    urls = [f"ws://127.0.0.1:{port}/ws/v1/" for port in ports]
    mode = "chat" if system.startswith("ours") else "relay"
    return started, urls[0], urls[1], mode


def chat_system(system, pairs, ns, *, sweep=True):
    """For each N: a warm-up, then N msg/s (each side every 2 s). At SWEEP_N the rate then climbs
    until p99 > 100 ms or a message is lost."""
    runs = []
    for n in ns:
        servers, client_url, mitra_url, mode = start_pair(system)
        try:
            if sweep and n == SWEEP_N:
                # The rate climbs from below N msg/s (the grid point is one of the steps).
                rates = SWEEP_RATES
            else:
                rates = [n]
            steps = [{"rate": rates[0], "seconds": 3, "record": False, "label": "warm-up"}]
            steps += [{"rate": r, "seconds": STEP_SECONDS, "label": f"N={n} @ {r}/s"} for r in rates]
            say(f"chat {system}: N={n} ({2 * n} sockets)")
            result = run_loadgen(
                {
                    "mode": mode,
                    "client_url": client_url,
                    "mitra_url": mitra_url,
                    "pairs": pairs[:n],
                    "steps": steps,
                    "server_pids": [p.pid for p in servers],
                    "grace": 5,
                    "stop_when_failing": {"p99_ms": P99_LIMIT_MS, "retries": SWEEP_RETRIES},
                },
                label=f"chat-{system}-{n}",
            )
            result.update(system=system, n=n)
            runs.append(result)
        finally:
            for process in servers:
                procs.stop(process)
    return runs


def max_sustained(runs):
    """The highest rate (msg/s sent) with p99 ≤ 100 ms and nothing lost, over the recorded steps."""
    best = 0.0
    for run in runs:
        for step in run["steps"]:
            ok = step["record"] and step["lost"] == 0 and not step["errors"]
            ok = ok and not step.get("sockets_closed_by_server")
            if ok and step["p99_ms"] is not None and step["p99_ms"] <= P99_LIMIT_MS:
                # The step's nominal rate: measured send rates differ by a fraction of a percent.
                best = max(best, step["target_rate"])
    return best


# Beacon ------------------------------------------------------------------------------------------


def wrk(url, *, seconds, connections=32, headers=None):
    header_args = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *header_args, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)

    def ms(match):
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    return {
        "rps": round(rps, 1),
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def beacon():
    results = {"load_generator": "wrk -t1 -c32 (C, one thread: one core for wrk, one for the server)"}
    port = procs.free_port()
    app = "bench.beacon_app:application"
    server = procs.start(
        "beacon-valkey", procs.uvicorn_cmd(app, port), env=server_env(), port=port, health_path="/healthz"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for name, path in (
            ("valkey", "/api/v1/availability"),
            ("constant_view", "/bench/constant"),
            ("raw_asgi", "/bench/raw"),
        ):
            wrk(base + path, seconds=2)  # warm-up
            say(f"beacon {name}: wrk {WRK_SECONDS}s")
            results[name] = wrk(base + path, seconds=WRK_SECONDS)
    finally:
        procs.stop(server)
    port = procs.free_port()
    server = procs.start(
        "beacon-postgres",
        procs.uvicorn_cmd(app, port),
        env=server_env(VALKEY_URL=""),
        port=port,
        health_path="/healthz",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wrk(base + "/api/v1/availability", seconds=2)
        say(f"beacon postgres fallback: wrk {WRK_SECONDS}s")
        results["postgres_fallback"] = wrk(base + "/api/v1/availability", seconds=WRK_SECONDS)
        results["constant_view_same_server_no_valkey"] = wrk(base + "/bench/constant", seconds=WRK_SECONDS)
    finally:
        procs.stop(server)
    results["valkey_vs_constant"] = round(results["valkey"]["rps"] / results["constant_view"]["rps"], 3)
    results["postgres_vs_constant"] = round(
        results["postgres_fallback"]["rps"] / results["constant_view_same_server_no_valkey"]["rps"], 3
    )
    return results


# Assignment --------------------------------------------------------------------------------------


def assignment():
    """500 paid sessions against 100 mitras of capacity 3, all at once: every thread marks one
    session paid and dispatches the queue (the real services, real commits)."""
    from django.db import connection, connections
    from django.db.models import Count, Q
    from django.test import override_settings

    from halobestie.accounts.models import Role, User
    from mitras import mirror
    from mitras.models import Mitra
    from mitras.services import mitra_create, mitra_set_online
    from sessions_app import lifecycle, matching
    from sessions_app.models import ChatSession

    # The chat mitras go offline (and the mirror is rebuilt): only the 100 take part.
    Mitra.objects.update(is_online=False, online_since=None)
    mirror.seed_from_postgres()
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(PASSWORD_HASHERS=fast):
        mitras = []
        for number in range(ASSIGN_MITRAS):
            mitra = mitra_create(
                phone=f"+62813{number:08d}",
                password="bench-mitra-123",
                display_name=f"Bestie A{number}",
                capacity=ASSIGN_CAPACITY,
            )
            mitras.append(mitra_set_online(mitra=mitra, is_online=True))
        sessions = []
        for number in range(ASSIGN_SESSIONS):
            client = User.objects.create_user(
                phone=f"+62814{number:08d}", role=Role.CLIENT, display_name=f"Klien A{number}"
            )
            sessions.append(lifecycle.session_create(client=client, package_code="curhat-15"))
    ids = [s.id for s in sessions]
    say(f"assignment: {len(ids)} sessions paid at once from {ASSIGN_THREADS} threads")
    barrier = threading.Barrier(ASSIGN_THREADS)
    errors = []

    def worker(chunk):
        try:
            barrier.wait()
            for session_id in chunk:
                lifecycle.session_mark_paid(session_id=session_id)
                matching.queue_dispatch()
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()

    chunks = [ids[i::ASSIGN_THREADS] for i in range(ASSIGN_THREADS)]
    started = time.monotonic()
    with ThreadPoolExecutor(ASSIGN_THREADS) as pool:
        list(pool.map(worker, chunks))
    elapsed = time.monotonic() - started
    connection.close()
    statuses = dict(
        ChatSession.objects.filter(id__in=ids)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    loads = (
        Mitra.objects.filter(id__in=[m.id for m in mitras])
        # Counted from the sessions, not read from Mitra.load: the bench checks the column too.
        .annotate(occupied=Count("chat_sessions", filter=Q(chat_sessions__status__in=["offered", "active"])))
        .values_list("occupied", "capacity")
    )
    overbooked = sum(1 for load, capacity in loads if load > capacity)
    offered = statuses.get("offered", 0)
    return {
        "sessions": ASSIGN_SESSIONS,
        "mitras": ASSIGN_MITRAS,
        "capacity": ASSIGN_CAPACITY,
        "threads": ASSIGN_THREADS,
        "seconds": round(elapsed, 2),
        "statuses": statuses,
        "assigned": offered,
        "queued": statuses.get("matching", 0),
        "assignments_per_s": round(offered / elapsed, 1),
        "paid_per_s": round(len(ids) / elapsed, 1),
        "overbooked_mitras": overbooked,
        "errors": errors[:5],
    }


# Reseed ------------------------------------------------------------------------------------------


def reseed():
    """seed_from_postgres() over 10,000 mitras and 50,000 sessions (rows bulk-created)."""
    from django.utils import timezone

    from halobestie.accounts.models import Role, User
    from mitras import mirror
    from mitras.models import Mitra
    from sessions_app.models import ChatSession

    say(f"reseed: bulk-creating {RESEED_MITRAS} mitras, {RESEED_MITRAS} clients, {RESEED_SESSIONS} sessions")
    now = timezone.now()
    existing_mitras = Mitra.objects.count()
    extra = RESEED_MITRAS - existing_mitras
    users = User.objects.bulk_create(
        [
            User(phone=f"+62815{n:08d}", role=Role.MITRA, display_name=f"Bestie R{n}", password="!")
            for n in range(extra)
        ],
        batch_size=2000,
    )
    Mitra.objects.bulk_create(
        [
            Mitra(
                user=u,
                display_name=u.display_name,
                capacity=3,
                is_online=n % 3 != 0,
                online_since=now if n % 3 else None,
                last_heartbeat_at=now,
                languages=["id"],
            )
            for n, u in enumerate(users)
        ],
        batch_size=2000,
    )
    mitra_ids = list(Mitra.objects.values_list("id", flat=True))
    clients = User.objects.bulk_create(
        [
            User(phone=f"+62816{n:08d}", role=Role.CLIENT, display_name=f"Klien R{n}", password="!")
            for n in range(RESEED_MITRAS)
        ],
        batch_size=2000,
    )
    have = ChatSession.objects.count()
    rows = []
    for n in range(RESEED_SESSIONS - have):
        # One open (active) session per client for the first 5,000; the rest ended.
        active = n < 5000
        rows.append(
            ChatSession(
                client=clients[n % len(clients)],
                mitra_id=mitra_ids[n % len(mitra_ids)],
                package_code="curhat-15",
                duration_seconds=900,
                price_idr=15000,
                status="active" if active else "ended",
                paid_at=now,
                accepted_at=now,
                ends_at=now + timedelta(hours=1),
                ended_at=None if active else now,
                end_reason="" if active else "time_up",
            )
        )
    ChatSession.objects.bulk_create(rows, batch_size=5000)
    totals = {
        "mitras": Mitra.objects.count(),
        "sessions": ChatSession.objects.count(),
        "online": Mitra.objects.filter(is_online=True).count(),
    }
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert mirror.seed_from_postgres()
        times.append(time.perf_counter() - started)
    state = mirror.read_state()
    return {
        **totals,
        "runs_s": [round(t, 3) for t in times],
        "best_s": round(min(times), 3),
        "median_s": round(sorted(times)[len(times) // 2], 3),
        "capacity_keys": len(state.capacity),
        "online_keys": len(state.online),
    }


# Idle memory -------------------------------------------------------------------------------------


def idle_memory(pairs, system="ours-uvicorn", sockets=IDLE_SOCKETS):
    port = procs.free_port()
    if system == "ours-uvicorn":
        server = procs.start(
            "idle-ours", procs.serve_cmd(port), env=server_env(), port=port, health_path="/healthz"
        )
        mode = "chat"
    elif system == "channels":
        env = server_env(BENCH_REDIS_URL=VALKEY_URL, BENCH_LAYER_PREFIX=f"{PREFIX}relay")
        server = procs.start(
            "idle-channels",
            procs.uvicorn_cmd("bench.channels_relay:application", port),
            env=env,
            port=port,
            health_path="/",
        )
        mode = "relay"
    else:
        command = [PY, "-m", "bench.floor_relay", "--port", str(port), "--redis", VALKEY_URL]
        server = procs.start("idle-floor", command, env=server_env(), port=port)
        mode = "relay"
    url = f"ws://127.0.0.1:{port}/ws/v1/"
    try:
        # Warm the process first (imports, pools, first connection), then measure the delta.
        run_loadgen(
            {
                "mode": mode,
                "client_url": url,
                "mitra_url": url,
                "pairs": pairs[:20],
                "steps": [{"rate": 20, "seconds": 1, "record": False}],
            },
            label=f"idle-warm-{system}",
        )
        time.sleep(1)
        before = procs.rss_bytes(server.pid)
        say(f"idle memory {system}: opening {sockets} sockets")
        config = {
            "mode": "idle",
            # Ours as the apps connect: they offer permessage-deflate (dart:io does by default) and
            # our server declines it unless WS_PER_MESSAGE_DEFLATE is set (halobestie/serve.py);
            # the baselines as before (not offered), comparable with earlier runs.
            "compression": "deflate" if system == "ours-uvicorn" else None,
            "socket_mode": mode,
            "client_url": url,
            "mitra_url": url,
            "pairs": pairs,
            "idle_sockets": sockets,
        }
        config_path = procs.LOG_DIR / f"idle-{system}.json"
        config_path.write_text(json.dumps(config))
        loader = subprocess.Popen(
            [PY, "-m", "bench.loadgen", str(config_path), str(config_path) + ".out"],
            cwd=ROOT,
            env=server_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        opened = json.loads(loader.stdout.readline())
        time.sleep(3)
        after = procs.rss_bytes(server.pid)
        loader.stdin.write("done\n")
        loader.stdin.flush()
        loader.wait(60)
    finally:
        procs.stop(server)
    return {
        "system": system,
        "sockets": opened["opened"],
        "connect_seconds": opened["seconds"],
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "kib_per_socket": round((after - before) / opened["opened"] / 1024, 1),
    }


# Output ------------------------------------------------------------------------------------------


def save(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def plot(chat):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "ours-uvicorn": ("tab:blue", "ours (uvicorn, DB write)"),
        "ours-daphne": ("tab:purple", "ours (daphne, DB write)"),
        "channels": ("tab:orange", "bare Channels relay"),
        "floor": ("tab:green", "floor: websockets + pub/sub"),
    }
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for system, runs in chat.items():
        points = sorted(
            (s["sent_per_s"], s["p50_ms"], s["p99_ms"])
            for r in runs
            if r["n"] == SWEEP_N
            for s in r["steps"]
            if s["record"] and s["p99_ms"] is not None
        )
        if not points:
            continue
        color, label = styles[system]
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], "o--", color=color, alpha=0.6, label=f"{label} p50")
        ax.plot(xs, [p[2] for p in points], "s-", color=color, label=f"{label} p99")
    ax.axhline(P99_LIMIT_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel(f"messages sent per second ({SWEEP_N} sessions, {2 * SWEEP_N} sockets, 2 processes)")
    ax.set_ylabel("send → receive latency (ms, log)")
    ax.set_title("Chat latency against load (2 cores, all on one machine)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "chat_latency.png")
    plt.close(fig)


def print_table(summary):
    print("\n" + "=" * 100)
    print(
        f"{'chat run':<34}{'sent/s':>9}{'deliv/s':>9}{'p50':>8}{'p95':>8}{'p99':>9}{'lost':>7}"
        f"{'cpu ms/msg':>11}{'srv cores':>10}"
    )
    for system, runs in summary["chat"].items():
        for run in runs:
            for s in run["steps"]:
                if not s["record"]:
                    continue
                print(
                    f"{system + ' ' + s['label']:<34}{s['sent_per_s']:>9.0f}{s['delivered_per_s']:>9.0f}"
                    f"{_f(s['p50_ms']):>8}{_f(s['p95_ms']):>8}{_f(s['p99_ms']):>9}{s['lost']:>7}"
                    f"{_f(s['server_cpu_ms_per_msg']):>11}{_f(s['server_cpu_cores']):>10}"
                )
    print("-" * 100)
    for name, value in summary["max_sustained"].items():
        print(f"max sustained (p99 ≤ {P99_LIMIT_MS} ms, no loss) {name:<16} {value:>8.0f} msg/s")
    b = summary.get("beacon")
    if b:
        for key in ("valkey", "postgres_fallback", "constant_view", "raw_asgi"):
            print(f"beacon {key:<20} {b[key]['rps']:>9.0f} req/s  p99 {b[key]['p99_ms']} ms")
        print(f"beacon valkey / constant view: {b['valkey_vs_constant']:.0%}")
    a = summary.get("assignment")
    if a:
        print(
            f"assignment: {a['assigned']} assigned + {a['queued']} queued in {a['seconds']} s "
            f"({a['assignments_per_s']}/s), overbooked {a['overbooked_mitras']}"
        )
    li = summary.get("legacy_import")
    if li:
        print(
            f"legacy import {li['messages']:,} messages: {li['import']['seconds']} s, "
            f"peak RSS {li['import']['peak_rss_mib']:.0f} MiB (second run {li['second_run']['seconds']} s)"
        )
    w = summary.get("wait_estimate")
    if w:
        for name, first in (("ours", w["ours"]), ("constant", w["constant_baseline"])):
            e = first["first_estimate"]
            print(
                f"wait estimate {name:<9} ({w['hours']} h, {e['count']} waits): |error| median "
                f"{e['median_abs_s']} s, p90 {e['p90_abs_s']} s; "
                f"relative median {e['median_rel']}, p90 {e['p90_rel']}"
            )
    r = summary.get("reseed")
    if r:
        print(
            f"reseed {r['mitras']} mitras / {r['sessions']} sessions: "
            f"best {r['best_s']} s, median {r['median_s']} s"
        )
    for m in summary.get("memory", []):
        print(f"idle sockets {m['system']:<14} {m['sockets']} sockets: {m['kib_per_socket']} KiB each")
    print("-" * 100)
    for target in summary["targets"]:
        print(f"{'PASS' if target['met'] else 'MISS'}  {target['name']}: {target['measured']}")
    print("=" * 100)


def write_chat_targets(summary):
    """Issue 22's chat targets (ratios to the relay and the floor of the same run, the fixed-rate
    steps, idle memory) as MET/MISSED rows in the `bench:chat` block of docs/PERFORMANCE.md."""
    from bench import chat_bench, docrows  # chat_bench imports this module

    chat = summary.get("chat") or {}
    if not chat:
        return
    sustained = {system: chat_bench.max_sustained(runs, SWEEP_N) for system, runs in chat.items()}
    rows = chat_bench.targets(chat, sustained, summary.get("memory") or [])
    docrows.write_rows(
        "chat",
        [(row["name"], row["measured"], "MET" if row["met"] else "MISSED") for row in rows],
        source="make bench",
    )


def _f(value):
    return "-" if value is None else f"{value:g}"


def _step(runs, n, rate):
    """The recorded step at `rate` for N = n: the last try when a failing step was run again (the
    one the sweep went on with; every try is in the results)."""
    found = None
    for run in runs:
        if run["n"] == n:
            for step in run["steps"]:
                if step["record"] and step["target_rate"] == rate:
                    found = step
    return found


def targets(summary):
    out = []
    ours = summary["chat"].get("ours-uvicorn", [])
    s500 = _step(ours, 500, 500)
    if s500:
        out.append(
            {
                "name": "500 sessions @ 500 msg/s: p99 ≤ 50 ms, zero loss",
                "measured": f"p99 {s500['p99_ms']} ms, lost {s500['lost']}",
                "met": s500["p99_ms"] is not None and s500["p99_ms"] <= 50 and s500["lost"] == 0,
            }
        )
        out.append(
            {
                "name": "server CPU per message ≤ 1.5 ms (incl. DB write)",
                "measured": f"{s500['server_cpu_ms_per_msg']} ms at 500 msg/s",
                "met": s500["server_cpu_ms_per_msg"] <= 1.5,
            }
        )
    ms = summary["max_sustained"]
    if "ours-uvicorn" in ms and "channels" in ms:
        out.append(
            {
                "name": "max sustained rate ≥ bare Channels relay",
                "measured": f"{ms['ours-uvicorn']:.0f} vs {ms['channels']:.0f} msg/s "
                f"({ms['ours-uvicorn'] / max(ms['channels'], 1):.0%})",
                "met": ms["ours-uvicorn"] >= ms["channels"],
            }
        )
    for m in summary.get("memory", []):
        if m["system"] == "ours-uvicorn":
            out.append(
                {
                    "name": "≤ 35 KB per idle socket",
                    "measured": f"{m['kib_per_socket']} KiB",
                    "met": m["kib_per_socket"] * 1.024 <= 35,
                }
            )
    b = summary.get("beacon")
    if b:
        out.append(
            {
                "name": "beacon from Valkey ≥ 80 % of the constant view",
                "measured": f"{b['valkey_vs_constant']:.0%}",
                "met": b["valkey_vs_constant"] >= 0.8,
            }
        )
    if summary.get("reads"):
        out.extend(reads.targets(summary["reads"]))
    a = summary.get("assignment")
    if a:
        out.append(
            {
                "name": "zero overbooking",
                "measured": f"{a['overbooked_mitras']} overbooked",
                "met": a["overbooked_mitras"] == 0 and not a["errors"],
            }
        )
    li = summary.get("legacy_import")
    if li:
        out.append(
            {
                "name": f"legacy import of {li['messages']:,} messages ≤ {li['memory_bound_mib']} MiB RSS",
                "measured": f"{li['import']['peak_rss_mib']:.0f} MiB, {li['import']['seconds']} s",
                "met": li["within_bound"] and li["import"]["checksums_match"],
            }
        )
    r = summary.get("reseed")
    if r:
        out.append(
            {
                "name": "reseed of 10,000 mitras < 2 s",
                "measured": f"{r['median_s']} s (median of 5)",
                "met": r["median_s"] < 2,
            }
        )
    return out


# Main --------------------------------------------------------------------------------------------


def main():
    procs.install_cleanup()
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))  # e.g. BENCH_ONLY=beacon,reseed

    def wanted(name):
        return not only or name in only

    limit = raise_file_limit()
    if shutil.which("wrk") is None:
        print("wrk not found: `apt-get install wrk` (the beacon bench needs it)", file=sys.stderr)
        return 2
    say(f"bench {'QUICK ' if QUICK else ''}starting; open files limit {limit}; logs in {procs.LOG_DIR}")
    summary = {"machine": machine_facts()}
    save("machine", summary["machine"])
    say(f"machine: {summary['machine']}")
    say(f"database {BENCH_DB}: drop, create, migrate")
    clear_valkey()
    recreate_database()
    setup_django()
    pairs_needed = max(CHAT_NS)
    say(f"creating {pairs_needed} active sessions (clients, mitras)")
    pairs = make_chat_pairs(pairs_needed)
    summary["chat"] = {}
    try:
        if wanted("chat"):
            systems = os.environ.get("BENCH_SYSTEMS", "ours-uvicorn,channels,floor").split(",")
            for system in systems:
                summary["chat"][system] = chat_system(system, pairs, CHAT_NS)
        if wanted("asgi"):
            summary["chat"]["ours-daphne"] = chat_system("ours-daphne", pairs, [SWEEP_N])
        if not summary["chat"] and (RESULTS / "chat.json").exists():
            # A partial run (BENCH_ONLY without chat): the targets still see the last chat results.
            summary["chat"] = json.loads((RESULTS / "chat.json").read_text())["chat"]
            say("chat not run: using the chat results already in bench/results/chat.json")
        summary["max_sustained"] = {s: max_sustained(r) for s, r in summary["chat"].items()}
        if summary["chat"]:
            save(
                "chat",
                {
                    "chat": summary["chat"],
                    "max_sustained": summary["max_sustained"],
                    "p99_limit_ms": P99_LIMIT_MS,
                    "sweep_n": SWEEP_N,
                },
            )
            plot(summary["chat"])
        for name in ("beacon", "reads", "memory", "assignment", "reseed", "legacy_import", "wait_estimate"):
            if not wanted(name) and (RESULTS / f"{name}.json").exists():
                summary[name] = json.loads((RESULTS / f"{name}.json").read_text())
        if wanted("beacon"):
            summary["beacon"] = beacon()
            save("beacon", summary["beacon"])
        if wanted("reads"):
            summary["reads"] = reads.run(
                pair=pairs[0],
                server_env=server_env,
                wrk=wrk,
                say=say,
                seconds=WRK_SECONDS,
                valkey_url=VALKEY_URL,
                prefix=PREFIX,
            )
            save("reads", summary["reads"])
            reads.write_doc(summary["reads"], summary["machine"])
        if wanted("memory"):
            summary["memory"] = [idle_memory(pairs, s) for s in ("ours-uvicorn", "channels", "floor")]
            save("memory", summary["memory"])
        write_chat_targets(summary)
        if wanted("assignment"):
            summary["assignment"] = assignment()
            save("assignment", summary["assignment"])
        if wanted("reseed"):
            summary["reseed"] = reseed()
            save("reseed", summary["reseed"])
        if wanted("legacy_import"):
            summary["legacy_import"] = legacy_import(admin_url=ADMIN_URL, server_env=server_env, say=say)
            save("legacy_import", summary["legacy_import"])
        if wanted("wait_estimate"):
            say("wait estimate: a simulated day of arrivals")
            summary["wait_estimate"] = wait_estimate.run(
                hours=6 if QUICK else 24, start_hour=17 if QUICK else 0
            )
            save("wait_estimate", summary["wait_estimate"])
        for name in ("dispatch", "storm"):
            # Issue 22: own databases and processes; each writes its rows in docs/PERFORMANCE.md.
            if wanted(name):
                say(f"{name}: python -m bench.{name}")
                subprocess.run([PY, "-m", f"bench.{name}"], cwd=ROOT, check=False)
    finally:
        procs.stop_all()
        clear_valkey()
    summary["targets"] = targets(summary)
    save(
        "summary",
        {
            "machine": summary["machine"],
            "max_sustained": summary["max_sustained"],
            "targets": summary["targets"],
            "minutes": round((time.monotonic() - STARTED) / 60, 1),
        },
    )
    print_table(summary)
    say(f"done in {(time.monotonic() - STARTED) / 60:.1f} min; results in {RESULTS}")
    return 0
