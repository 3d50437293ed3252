"""The chat bench on its own (issue 22, "chat past the relay"): ours vs the bare Channels relay vs
the floor, in the same run, at chosen sizes and rates; optionally with py-spy on our processes.

    BENCH_DATABASE_NAME=halobestie_bench_chat BENCH_VALKEY_PREFIX=benchchat: \
    BENCH_CHANNEL_LAYER_PREFIX=benchchat-layer BENCH_PORTS=4800-4899 \
        .venv/bin/python scripts/with_services.py -- .venv/bin/python -m bench.chat_bench

Environment (all optional):
  CHAT_SYSTEMS   ours-uvicorn,channels,floor (ours-granian too, when granian is installed; ours-base:
                 ours served from the checkout CHAT_BASE_ROOT, for an A/B in the same run)
  CHAT_PLAN      "N:rate,rate;N:rate" (default "500:500,750,1000,1250,1500,2000;1000:1000")
  CHAT_SECONDS   seconds per step (default 10)
  CHAT_REUSE=1   keep the database and sessions of the last run (bench/results/chat_bench/pairs.json)
  CHAT_PROFILE=1 py-spy records our first process once the sockets are open (CHAT_PROFILE_DELAY
                 s, default 15), raw collapsed stacks next to the results (CHAT_PROFILE_RATE samples/s,
                 default 200; CHAT_PROFILE_BLOCKING=1: the process is paused per sample, slower but
                 whole stacks)
  CHAT_IDLE_SOCKETS=2000  then the memory per idle socket of ours, the relay and the floor
Writes bench/results/chat_bench/chat_bench.json and prints a table with the ratios.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import psutil

from bench import procs, runner

RESULTS = runner.ROOT / "bench" / "results" / "chat_bench"
P99_LIMIT_MS = runner.P99_LIMIT_MS


def _plan():
    text = os.environ.get("CHAT_PLAN", "500:500,750,1000,1250,1500,2000;1000:1000")
    plan = []
    for part in filter(None, text.split(";")):
        n, rates = part.split(":")
        plan.append((int(n), [int(r) for r in rates.split(",")]))
    return plan


def _pairs(count):
    RESULTS.mkdir(parents=True, exist_ok=True)
    cache = RESULTS / "pairs.json"
    if os.environ.get("CHAT_REUSE") and cache.exists():
        cached = json.loads(cache.read_text())
        if len(cached["pairs"]) >= count:
            # The tokens were signed with that run's secret.
            runner._SECRET, runner._JWT_SECRET = cached["secret"], cached["jwt_secret"]
            runner.setup_django()
            return cached["pairs"]
    runner.clear_valkey()
    runner.recreate_database()
    runner.setup_django()
    pairs = runner.make_chat_pairs(count)
    cache.write_text(json.dumps({"pairs": pairs, "secret": runner._SECRET, "jwt_secret": runner._JWT_SECRET}))
    return pairs


def start(system):
    if system == "ours-base":
        # Ours from another checkout (CHAT_BASE_ROOT, e.g. a worktree of main): A/B in one run.
        root = os.environ["CHAT_BASE_ROOT"]
        ports = [procs.free_port(), procs.free_port()]
        started = [
            procs.start(
                f"ours-base-{index}",
                ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", root, *procs.serve_cmd(port)],
                env=runner.server_env(),
                port=port,
                health_path="/healthz",
            )
            for index, port in enumerate(ports)
        ]
        return started, *(f"ws://127.0.0.1:{port}/ws/v1/" for port in ports), "chat"
    if system == "ours-granian":
        ports = [procs.free_port(), procs.free_port()]
        started = [
            procs.start(
                f"ours-granian-{index}",
                granian_cmd("halobestie.asgi:public_application", port),
                env=runner.server_env(),
                port=port,
                health_path="/healthz",
            )
            for index, port in enumerate(ports)
        ]
        return started, *(f"ws://127.0.0.1:{port}/ws/v1/" for port in ports), "chat"
    return runner.start_pair(system)


def granian_cmd(app, port):
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--loop", "uvloop", app,
    ]  # fmt: skip


def _server_pids(servers):
    """The servers' pids and their children's: granian serves from worker processes of its own
    (the parent only supervises), whose CPU is the server's."""
    pids = []
    for server in servers:
        pids.append(server.pid)
        with contextlib.suppress(psutil.Error):
            pids += [child.pid for child in psutil.Process(server.pid).children(recursive=True)]
    return pids


def _postmaster_pid():
    """The bench database's postmaster when it runs on this machine (the parent of our backend),
    else None: its CPU per message is then recorded beside the server's."""
    import psycopg

    try:
        with psycopg.connect(runner.BENCH_URL, connect_timeout=5) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return psutil.Process(backend).ppid()
    except (psycopg.Error, psutil.Error):
        return None


def run_system(system, pairs, plan, seconds):
    runs = []
    for n, rates in plan:
        servers, client_url, mitra_url, mode = start(system)
        profiler = None
        try:
            if os.environ.get("CHAT_PROFILE") and system.startswith("ours"):
                # After the sockets are open (CHAT_PROFILE_DELAY s): the message path, not connect.
                out = RESULTS / f"profile-{system}-{n}.txt"
                py_spy = str(procs.Path(sys.executable).parent / "py-spy")
                command = [py_spy, "record", "-o", str(out), "-p", str(servers[0].pid)]
                command += ["-r", os.environ.get("CHAT_PROFILE_RATE", "200"), "--format", "raw"]
                if not os.environ.get("CHAT_PROFILE_BLOCKING"):
                    command.append("--nonblocking")
                profiler = []

                def start_profiler(command=command, profiler=profiler):
                    profiler.append(
                        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    )

                timer = threading.Timer(float(os.environ.get("CHAT_PROFILE_DELAY", "15")), start_profiler)
                timer.start()
            steps = [{"rate": rates[0], "seconds": 3, "record": False, "label": "warm-up"}]
            steps += [{"rate": r, "seconds": seconds, "label": f"N={n} @ {r}/s"} for r in rates]
            runner.say(f"chat {system}: N={n} ({2 * n} sockets) rates {rates}")
            result = _loadgen(
                {
                    "mode": mode,
                    "client_url": client_url,
                    "mitra_url": mitra_url,
                    "pairs": pairs[:n],
                    "steps": steps,
                    "server_pids": _server_pids(servers),
                    "postgres_pid": _postmaster_pid(),
                    "grace": 5,
                    "stop_when_failing": {"p99_ms": P99_LIMIT_MS, "retries": runner.SWEEP_RETRIES}
                    if len(rates) > 1
                    else None,
                },
                label=f"chatbench-{system}-{n}",
            )
            result.update(system=system, n=n)
            runs.append(result)
        finally:
            if profiler is not None:
                timer.cancel()
                for process in profiler:
                    process.send_signal(2)
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
            for process in servers:
                procs.stop(process)
    return runs


def _loadgen(config, *, label):
    """run_loadgen, but a failed run (this busy machine: Postgres out of connections, a socket
    refused at connect) is recorded as failed instead of ending the bench."""
    try:
        return runner.run_loadgen(config, label=label)
    except subprocess.CalledProcessError as exc:
        runner.say(f"  {label} failed: {exc}")
        return {"failed": True, "steps": []}


def max_sustained(runs, n):
    best = 0
    for run in runs:
        if run["n"] != n:
            continue
        for step in run["steps"]:
            ok = step["record"] and step["lost"] == 0 and not step["errors"]
            ok = ok and not step.get("sockets_closed_by_server")
            if ok and step["p99_ms"] is not None and step["p99_ms"] <= P99_LIMIT_MS:
                best = max(best, step["target_rate"])
    return best


def targets(chat, max_sustained_by_system, memory=()):
    """Issue 22's chat targets as rows {name, measured, met}: ratios to the relay and the floor of
    the same run. `chat` as in chat_bench.json (or bench/results/chat.json of `make bench`)."""
    ours_name = next((s for s in ("ours-uvicorn", "ours-granian") if s in chat), None)
    rows = []
    if ours_name is None:
        return rows
    ours = max_sustained_by_system.get(ours_name, 0)
    relay = max_sustained_by_system.get("channels")
    floor = max_sustained_by_system.get("floor")

    def row(name, measured, met):
        rows.append({"name": name, "measured": measured, "met": bool(met)})

    if relay:
        ratio = f"{ours:.0f} vs {relay:.0f} msg/s ({ours / relay:.2f}×)"
        row("chat max sustained ≥ 1.0× the bare Channels relay", ratio, ours >= relay)
    if floor:
        ratio = f"{ours:.0f} vs {floor:.0f} msg/s ({ours / floor:.2f}×)"
        row("chat max sustained ≥ 0.75× the floor", ratio, ours >= 0.75 * floor)
    s500 = runner._step(chat[ours_name], 500, 500)
    if s500:
        measured = f"p99 {s500['p99_ms']} ms, lost {s500['lost']}, refused {s500.get('refused', 0)}"
        met = s500["p99_ms"] is not None and s500["p99_ms"] <= 50 and s500["lost"] == 0
        row("N = 500, 500 msg/s: p99 ≤ 50 ms", measured, met)
    s1000 = runner._step(chat[ours_name], 1000, 1000)
    if s1000:
        measured = (
            f"{s1000['lost']} undelivered, {s1000.get('refused', 0)} refused (overloaded), "
            f"{s1000.get('sockets_closed_by_server', 0)} sockets closed, p99 {s1000['p99_ms']} ms"
        )
        row("N = 1,000, 1,000 msg/s: 0 undelivered", measured, s1000["lost"] == 0)
    for m in memory:
        if m["system"] == "ours-uvicorn":
            row("≤ 25 KiB per idle socket", f"{m['kib_per_socket']} KiB", m["kib_per_socket"] <= 25)
    return rows


def main():
    procs.install_cleanup()
    runner.raise_file_limit()
    systems = os.environ.get("CHAT_SYSTEMS", "ours-uvicorn,channels,floor").split(",")
    plan = _plan()
    seconds = int(os.environ.get("CHAT_SECONDS", "10"))
    pairs = _pairs(max(n for n, _ in plan))
    chat = {}
    try:
        # Interleaved per N so that the busy machine's noise hits all systems alike.
        for n, rates in plan:
            for system in systems:
                chat.setdefault(system, []).extend(run_system(system, pairs, [(n, rates)], seconds))
    finally:
        procs.stop_all()
    memory = []
    idle = int(os.environ.get("CHAT_IDLE_SOCKETS", "0"))
    if idle:
        for system in ("ours-uvicorn", "channels", "floor"):
            try:
                memory.append(runner.idle_memory(pairs, system, sockets=idle))
            except Exception as exc:  # a busy machine: recorded, the bench goes on
                runner.say(f"idle memory {system} failed: {exc}")
            finally:
                procs.stop_all()
    sweep_n = plan[0][0]
    summary = {
        "plan": plan,
        "seconds": seconds,
        "chat": chat,
        "max_sustained": {s: max_sustained(r, sweep_n) for s, r in chat.items()},
        "sweep_n": sweep_n,
        "memory": memory,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    summary["targets"] = targets(chat, summary["max_sustained"], memory)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chat_bench.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'run':<32}{'sent/s':>8}{'deliv/s':>8}{'p50':>8}{'p99':>9}{'lost':>6}{'refused':>8}"
          f"{'closed':>7}{'cpu ms':>8}{'pg ms':>7}{'busy':>6}")  # fmt: skip
    for system, runs in chat.items():
        for run in runs:
            for s in run["steps"]:
                if s["record"]:
                    print(
                        f"{system + ' ' + s['label']:<32}{s['sent_per_s']:>8.0f}{s['delivered_per_s']:>8.0f}"
                        f"{runner._f(s['p50_ms']):>8}{runner._f(s['p99_ms']):>9}{s['lost']:>6}"
                        f"{s.get('refused', 0):>8}{s.get('sockets_closed_by_server', 0):>7}"
                        f"{runner._f(s['server_cpu_ms_per_msg']):>8}"
                        f"{runner._f(s.get('postgres_cpu_ms_per_msg')):>7}{s.get('machine_busy_cores', 0):>6}"
                    )
    for m in memory:
        print(f"idle sockets {m['system']:<14} {m['sockets']} sockets: {m['kib_per_socket']} KiB each")
    ms = summary["max_sustained"]
    print(f"max sustained at N={sweep_n} (p99 ≤ {P99_LIMIT_MS} ms, no loss): {ms}")
    ours = max([v for k, v in ms.items() if k.startswith("ours") and k != "ours-base"] or [0])
    if ms.get("channels"):
        print(f"ours / relay: {ours / ms['channels']:.2f}×")
    if ms.get("floor"):
        print(f"ours / floor: {ours / ms['floor']:.2f}×")
    for row in summary["targets"]:
        print(f"{'MET   ' if row['met'] else 'MISSED'} {row['name']}: {row['measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
