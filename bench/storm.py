"""Bench (issue 22): a reconnect storm — every socket closed with 1012, reconnected and synced.

`python -m bench.storm` (also `make bench`, name `storm`). Its own database (`BENCH_STORM_DB`,
default `halobestie_bench_storm`) and Valkey prefixes (`BENCH_STORM_PREFIX`, default
`benchstorm:`), server ports from `BENCH_STORM_PORT` (default 4700, three consecutive ports);
without those, derived from BENCH_DATABASE_NAME / BENCH_VALKEY_PREFIX / BENCH_PORTS when set.
STORM_SOCKETS (2,000) users — half clients, half
Besties, one active session per pair with a few messages — each open one socket (Bearer token)
to public process A (`python -m halobestie.serve public`). Then A gets SIGTERM (a rolling
restart): it closes every socket with 1012, and every app reconnects at once to the two other
public processes B and C (the load balancer's choice: half each), waits for `hello`, sends one
`sync` frame for its sessions from the last seq it saw, and reads until `sync.done`. Two client
processes (`python -m bench.storm client …`) share the sockets. Measured: from the first 1012
to the last `sync.done`, every socket accounted for.
"""

import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import dispatch, docrows, procs

SOCKETS = int(os.environ.get("BENCH_STORM_SOCKETS", "2000"))
TARGET_SECONDS = 3.0
# Overridable so that two benches on one machine share no database, Valkey prefix or port:
# BENCH_STORM_DB / _PREFIX / _PORT, else derived from BENCH_DATABASE_NAME, BENCH_VALKEY_PREFIX and
# BENCH_PORTS (the first port of the range) as bench/runner.py reads them.
DB = os.environ.get("BENCH_STORM_DB") or (
    f"{os.environ['BENCH_DATABASE_NAME']}_storm"
    if os.environ.get("BENCH_DATABASE_NAME")
    else "halobestie_bench_storm"
)
PREFIX = (
    os.environ.get("BENCH_STORM_PREFIX")
    or f"{os.environ.get('BENCH_VALKEY_PREFIX', 'bench:').rstrip(':')}storm:"
)
LAYER_PREFIX = f"{PREFIX.rstrip(':')}-layer"
PORT = int(
    os.environ.get("BENCH_STORM_PORT")
    or (os.environ["BENCH_PORTS"].split("-")[0] if os.environ.get("BENCH_PORTS") else "4700")
)
CLIENT_PROCESSES = 2
MESSAGES_PER_SESSION = 3
OPEN_CONCURRENCY = 50
RECONNECT_ATTEMPTS = 8
# A diagnostic: A's closing alone (the apps record their 1012 and do not reconnect).
CLOSE_ONLY = os.environ.get("BENCH_STORM_CLOSE_ONLY", "") not in ("", "0", "false")


PATTERNS = (f"{PREFIX}*", f"{LAYER_PREFIX}*")


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard if hard != resource.RLIM_INFINITY else 65536, 1_048_576)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _seed(pairs):
    """`pairs` clients and Besties (bulk), one active session each with a few messages; returns
    [(token, session_id)] for every user."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework_simplejwt.tokens import AccessToken

    from halobestie.accounts.models import Role, User
    from mitras.models import Mitra
    from sessions_app.models import ChatSession, Message

    now = timezone.now()
    clients = User.objects.bulk_create(
        [
            User(phone=f"+62815{n:08d}", role=Role.CLIENT, display_name=f"Klien S{n}", password="!")
            for n in range(pairs)
        ]
    )
    mitra_users = User.objects.bulk_create(
        [
            User(phone=f"+62816{n:08d}", role=Role.MITRA, display_name=f"Bestie S{n}", password="!")
            for n in range(pairs)
        ]
    )
    mitras = Mitra.objects.bulk_create(
        [Mitra(user=u, display_name=u.display_name, capacity=3) for u in mitra_users]
    )
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
                last_seq=MESSAGES_PER_SESSION,
            )
            for c, m in zip(clients, mitras, strict=True)
        ]
    )
    Message.objects.bulk_create(
        [
            Message(
                session=s,
                seq=seq,
                sender_id=s.client_id if seq % 2 else m.user_id,
                body=f"pesan {seq}",
                client_msg_id=f"seed-{seq}",
                created_at=now,
            )
            for s, m in zip(sessions, mitras, strict=True)
            for seq in range(1, MESSAGES_PER_SESSION + 1)
        ]
    )

    def token(user):
        access = AccessToken.for_user(user)
        access["role"] = user.role
        return str(access)

    out = []
    for s, c, u in zip(sessions, clients, mitra_users, strict=True):
        out.append((token(c), str(s.id)))
        out.append((token(u), str(s.id)))
    return out


# The client processes --------------------------------------------------------------------------


async def _client(config):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    users = config["users"]
    first_url, others = config["first_url"], config["other_urls"]
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    opened = [None] * len(users)
    stats = {"closed_1012": [], "synced": [], "errors": [], "other_close_codes": [], "retries": 0}

    async def open_one(index):
        token, _ = users[index]
        async with gate:
            for attempt in range(RECONNECT_ATTEMPTS):  # not measured: a busy machine may refuse some
                try:
                    ws = await connect(
                        first_url,
                        additional_headers={"Authorization": f"Bearer {token}"},
                        max_queue=None,
                        open_timeout=60,
                    )
                    hello = json.loads(await ws.recv())
                    if hello.get("type") == "hello":
                        opened[index] = ws
                        return
                except (OSError, ConnectionClosed, TimeoutError):
                    pass
                await asyncio.sleep(random.uniform(0.05, 0.25) * 2**attempt)
            raise RuntimeError("could not open a socket to process A")

    await asyncio.gather(*(open_one(i) for i in range(len(users))))
    Path(config["ready_path"]).write_text("ready")

    async def storm_one(index):
        token, session_id = users[index]
        ws = opened[index]
        try:
            async for _ in ws:
                pass  # nothing arrives before the close
        except ConnectionClosed:
            pass
        closed_at = time.time()
        code = ws.close_code
        if code != 1012:
            stats["other_close_codes"].append(code)
        stats["closed_1012"].append(closed_at)
        if not others:  # BENCH_STORM_CLOSE_ONLY: A's closing alone, nobody reconnects
            return
        url = others[index % len(others)]
        # As the apps do (docs/realtime.md): reconnect at once; after a failure (an overloaded
        # server closes with 1012) again with jitter, backing off.
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                await _reconnect_and_sync(url, token, session_id)
                stats["synced"].append(time.time())
                return
            except Exception as exc:
                if attempt == RECONNECT_ATTEMPTS - 1:
                    stats["errors"].append(repr(exc)[:200])
                    return
                stats["retries"] = stats.get("retries", 0) + 1
                await asyncio.sleep(random.uniform(0.05, 0.25) * 2**attempt)

    async def _reconnect_and_sync(url, token, session_id):
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, max_queue=None, open_timeout=60
        ) as again:
            hello = json.loads(await again.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"no hello: {hello}")
            await again.send(
                json.dumps({"type": "sync", "sessions": [{"session_id": session_id, "after_seq": 1}]})
            )
            seen = 0
            while True:
                frame = json.loads(await again.recv())
                if frame["type"] == "message.new":
                    seen += 1
                elif frame["type"] == "sync.done":
                    break
                elif frame["type"] == "error":
                    raise RuntimeError(f"sync error: {frame}")
            if seen != MESSAGES_PER_SESSION - 1:
                raise RuntimeError(f"synced {seen} messages")

    async def watch_lag():
        # How late this client's own loop runs: closes and frames are timestamped when the loop
        # gets to them, so a client starved of CPU stretches what it measures.
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(0.01)
            stats["max_loop_lag_s"] = max(stats["max_loop_lag_s"], loop.time() - started - 0.01)

    stats["max_loop_lag_s"] = 0.0
    cpu_before = time.process_time()
    watcher = asyncio.ensure_future(watch_lag())
    if config.get("close_only"):
        others = []
    await asyncio.wait_for(asyncio.gather(*(storm_one(i) for i in range(len(users)))), timeout=120)
    watcher.cancel()
    stats["cpu_s"] = time.process_time() - cpu_before
    return stats


def client_main(config_path, result_path):
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    config = json.loads(Path(config_path).read_text())
    stats = asyncio.run(_client(config))
    Path(result_path).write_text(json.dumps(stats))


# The orchestration -----------------------------------------------------------------------------


def storm_bench(*, log=print, db=DB):
    from django.db import connection

    users = _seed(SOCKETS // 2)
    connection.close()
    env = dispatch.env_for(
        db,
        REALTIME_MAX_SOCKETS_PER_USER="1000",
        CHANNEL_LAYER_PREFIX=LAYER_PREFIX,
        VALKEY_KEY_PREFIX=PREFIX,
        DRAIN_SECONDS="0",
    )
    ports = [PORT, PORT + 1, PORT + 2]
    servers = []
    try:
        for index, port in enumerate(ports):
            servers.append(
                procs.start(
                    f"storm-{'abc'[index]}",
                    procs.serve_cmd(port),
                    # Close-only: A logs its closing ("sockets closed with 1012", at INFO).
                    env=dict(env, LOG_LEVEL="INFO") if CLOSE_ONLY and index == 0 else env,
                    port=port,
                    health_path="/healthz",
                )
            )
        work = procs.LOG_DIR
        work.mkdir(parents=True, exist_ok=True)
        clients = []
        for index in range(CLIENT_PROCESSES):
            config = {
                "users": users[index::CLIENT_PROCESSES],
                "first_url": f"ws://127.0.0.1:{ports[0]}/ws/v1/",
                "other_urls": [f"ws://127.0.0.1:{p}/ws/v1/" for p in ports[1:]],
                "ready_path": str(work / f"storm-ready-{index}"),
                "close_only": CLOSE_ONLY,
            }
            Path(config["ready_path"]).unlink(missing_ok=True)
            config_path = work / f"storm-client-{index}.json"
            result_path = work / f"storm-result-{index}.json"
            result_path.unlink(missing_ok=True)
            config_path.write_text(json.dumps(config))
            clients.append(
                (
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.storm", "client", str(config_path), str(result_path)],
                        cwd=procs.ROOT,
                        env=env,
                    ),
                    Path(config["ready_path"]),
                    result_path,
                )
            )
        log(f"storm: opening {len(users)} sockets to process A")
        deadline = time.monotonic() + 300
        while not all(ready.exists() for _, ready, _ in clients):
            if any(p.poll() is not None for p, _, _ in clients) or time.monotonic() > deadline:
                raise RuntimeError("storm clients did not open their sockets")
            time.sleep(0.2)
        log("storm: SIGTERM to A (every socket closed with 1012), reconnect to B and C, sync")
        profilers = _start_profilers(servers)
        cpu_before = [_cpu_seconds(server.pid) for server in servers]
        signalled = time.time()
        servers[0].send_signal(signal.SIGTERM)
        stats = {"closed_1012": [], "synced": [], "errors": [], "other_close_codes": [], "retries": 0}
        client_cpu, client_lag = [], []
        for process, _, result_path in clients:
            process.wait(timeout=300)
            if result_path.exists():
                for key, values in json.loads(result_path.read_text()).items():
                    if key == "cpu_s":
                        client_cpu.append(round(values, 2))
                    elif key == "max_loop_lag_s":
                        client_lag.append(round(values, 2))
                    else:
                        stats[key] += values
            else:
                stats["errors"].append(f"client exited with {process.returncode}")
        # A has exited (a zombie until reaped: its CPU times are still readable); B and C are idle.
        cpu_used = [
            round(_cpu_seconds(s.pid) - before, 2) for s, before in zip(servers, cpu_before, strict=True)
        ]
        for profiler in profilers:
            profiler.wait(timeout=120)
    finally:
        for server in servers:
            procs.stop(server)
    # A socket closed before the SIGTERM (A's watchdog closing sockets on an overloaded machine)
    # is not part of the storm: counted apart, not timed.
    early = [t for t in stats["closed_1012"] if t < signalled]
    stats["closed_1012"] = [t for t in stats["closed_1012"] if t >= signalled]
    first_close = min(stats["closed_1012"]) if stats["closed_1012"] else None
    last_sync = max(stats["synced"]) if stats["synced"] else None
    seconds = round(last_sync - first_close, 2) if first_close and last_sync else None
    all_synced = len(stats["synced"]) == len(users)
    return {
        "sockets": len(users),
        "reconnected_to_processes": 2,
        "client_processes": CLIENT_PROCESSES,
        "seconds": seconds,
        "first_close_after_sigterm_s": round(first_close - signalled, 2) if first_close else None,
        "last_close_after_sigterm_s": (
            round(max(stats["closed_1012"]) - signalled, 2) if first_close else None
        ),
        "cpu_s": dict(zip(("a", "b", "c"), cpu_used, strict=True)),
        "client_cpu_s": client_cpu,
        "client_max_loop_lag_s": client_lag,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "closed_before_sigterm": len(early),
        "synced": len(stats["synced"]),
        "reconnect_retries": stats["retries"],
        "other_close_codes": sorted(set(stats["other_close_codes"]))[:5],
        "errors": stats["errors"][:5],
        "error_count": len(stats["errors"]),
        "target_seconds": TARGET_SECONDS,
        "met": seconds is not None and seconds <= TARGET_SECONDS and all_synced and not stats["errors"],
    }


def _cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far, from /proc (also for a zombie not yet reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_profilers(servers):
    """With BENCH_STORM_PROFILE=<folder>: py-spy records each server process (A, B, C) for
    BENCH_STORM_PROFILE_SECONDS (20) from just before the SIGTERM, as raw collapsed stacks
    (<folder>/storm-a.txt, …; `--gil`: only what holds the GIL, i.e. CPU). py-spy slows what it samples: the
    seconds of a profiled run are not the bench's."""
    folder = os.environ.get("BENCH_STORM_PROFILE")
    if not folder:
        return []
    Path(folder).mkdir(parents=True, exist_ok=True)
    seconds = os.environ.get("BENCH_STORM_PROFILE_SECONDS", "20")
    profilers = []
    for name, server in zip("abc", servers, strict=True):
        py_spy = Path(sys.executable).parent / "py-spy"
        output = str(Path(folder) / f"storm-{name}.txt")
        command = [str(py_spy) if py_spy.exists() else "py-spy", "record", "--pid", str(server.pid),
                   "--duration", seconds, "--rate", "200", "--gil", "--nonblocking",
                   "--format", "raw", "--output", output]  # fmt: skip
        profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attached
    return profilers


def target_rows(result):
    seconds = result.get("seconds")
    ratio = f"{seconds / TARGET_SECONDS:.2f}× the limit" if seconds else "not all synced"
    return [
        (
            f"{result['sockets']:,} sockets closed with 1012, reconnected and synced ≤ 3 s",
            f"{seconds} s ({ratio}); {result['synced']:,} synced, {result['error_count']} errors",
            "MET" if result["met"] else "MISSED",
        )
    ]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client_main(sys.argv[2], sys.argv[3])
        return 0
    procs.install_cleanup()
    raise_file_limit()
    dispatch.clear_valkey(PATTERNS)
    dispatch.recreate_database(DB)
    dispatch.setup_django(DB)
    try:
        result = storm_bench()
    finally:
        dispatch.clear_valkey(PATTERNS)
    docrows.save("storm", result)
    docrows.write_rows("storm", target_rows(result))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
