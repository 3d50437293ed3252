"""The beacon against the Node backend it replaces, and the other hot reads (issue 22).

`BENCH_ONLY=reads make bench` (also part of a full `make bench`). In one run, on one machine, with
one load generator (`wrk -t1 -c32`, the same for every system), one server process each:

1. the Node anchor (`bench/node_beacon/`: Express 4 + ioredis, `npm ci` by `make bench`) serving
   the same snapshot string from Redis (one GET per request), and its constant route;
2. ours (`python -m halobestie.serve public`, the production launcher) answering
   `GET /api/v1/availability` with Valkey up;
3. ours with Valkey down (`VALKEY_URL` unset: the beacon built from Postgres, one query a second);
4. ours, the other hot reads: `GET /api/v1/config`, a session's state `GET /api/v1/sessions/<id>`
   and its history `GET /api/v1/sessions/<id>/messages` (50 messages), each with the client's
   Bearer token;
5. the same four reads with the fast routes off (`FAST_ROUTES_ENABLED=false`: through Django's
   middleware and DRF), for the comparison.

All servers run at once (idle but the one under load); the beacon systems take turns ROUNDS
times and each keeps its median round, so a busy spell of the machine hits them alike.

Targets (issue 22), written as MET/MISSED with ratios into docs/PERFORMANCE.md between the
`bench:reads` markers (the rest of that page is not touched):
- beacon from Valkey ≥ 100 % of the Node anchor, per process;
- beacon with Valkey down ≥ 50 % of the Node anchor;
- every other hot read ≥ 1,500 req/s with p99 ≤ 50 ms at 32 connections, per process.
"""

import json
import re
import shutil
import subprocess
from datetime import timedelta

from bench import procs

ROOT = procs.ROOT
NODE_DIR = ROOT / "bench" / "node_beacon"
DOC = ROOT / "docs" / "PERFORMANCE.md"
START, END = "<!-- bench:reads:start -->", "<!-- bench:reads:end -->"
HOT_READ_RPS, HOT_READ_P99_MS = 1500, 50
MESSAGES = 50


def prepare_data(pair, *, valkey_url, node_key):
    """50 messages in the pair's session; the snapshot string the Node anchor serves (our
    builder's output, stored under its own key without a TTL)."""
    import redis
    from django.utils import timezone

    from mitras import selectors
    from sessions_app.models import ChatSession, Message

    session_id, client_id, _, mitra_user_id, _ = pair
    now = timezone.now()
    if not Message.objects.filter(session_id=session_id).exists():
        Message.objects.bulk_create(
            [
                Message(
                    session_id=session_id,
                    seq=n,
                    sender_id=client_id if n % 2 else mitra_user_id,
                    body=f"pesan nomor {n} untuk bench",
                    created_at=now - timedelta(seconds=MESSAGES - n),
                )
                for n in range(1, MESSAGES + 1)
            ]
        )
        ChatSession.objects.filter(pk=session_id).update(last_seq=MESSAGES)
    body = selectors.availability_beacon_json()
    redis.Redis.from_url(valkey_url).set(node_key, body)
    return body


def _node_ready():
    if shutil.which("node") is None:
        return "node not installed"
    if not (NODE_DIR / "node_modules" / "express").exists():
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True)
        if result.returncode != 0:
            return "npm ci failed: " + result.stderr.decode(errors="replace")[-300:]
    return None


ROUNDS = 3  # the beacon systems take turns, ROUNDS times; each row keeps its median round


def _median(samples):
    """The round with the median req/s (its p50/p99 with it), and every round's req/s."""
    ordered = sorted(samples, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rounds_rps"] = [r["rps"] for r in samples]
    return chosen


def run(*, pair, server_env, wrk, say, seconds, valkey_url, prefix):
    """Every server is started first (all idle but the one under load); the beacon systems then
    take turns, ROUNDS times, so that a busy spell on the machine hits them alike; the other reads
    once each (ours with the fast routes, then through Django)."""
    results = {
        "load_generator": "wrk -t1 -c32 for every system (one thread), one server process each",
        "seconds": seconds,
        "rounds": ROUNDS,
    }
    node_key = f"{prefix}node:availability:snapshot"
    results["snapshot_bytes"] = len(prepare_data(pair, valkey_url=valkey_url, node_key=node_key))
    session_id, _, client_token, _, _ = pair
    auth = {"Authorization": f"Bearer {client_token}"}
    servers = {}
    try:
        problem = _node_ready()
        if problem:
            results["node_error"] = problem
            say(f"reads: Node anchor not run: {problem}")
        else:
            port = procs.free_port()
            command = ["node", str(NODE_DIR / "server.js"), "--port", str(port)]
            command += ["--redis", valkey_url, "--key", node_key]
            node = procs.start("reads-node", command, env=server_env(), port=port, health_path="/healthz")
            servers["node"] = (node, f"http://127.0.0.1:{port}")
        for name, env in (
            ("ours", server_env()),
            ("ours_no_valkey", server_env(VALKEY_URL="")),
            ("ours_django", server_env(FAST_ROUTES_ENABLED="false")),
        ):
            port = procs.free_port()
            process = procs.start(
                f"reads-{name}", procs.serve_cmd(port), env=env, port=port, health_path="/healthz"
            )
            servers[name] = (process, f"http://127.0.0.1:{port}")

        beacon_rows = [
            ("node_beacon", "node", "/api/v1/availability"),
            ("node_constant", "node", "/constant"),
            ("beacon_valkey", "ours", "/api/v1/availability"),
            ("beacon_valkey_down", "ours_no_valkey", "/api/v1/availability"),
        ]
        beacon_rows = [row for row in beacon_rows if row[1] in servers]
        for _, server, path in beacon_rows:
            _check(servers[server][1] + path, {})
            wrk(servers[server][1] + path, seconds=2)  # warm-up
        samples = {row[0]: [] for row in beacon_rows}
        for round_number in range(ROUNDS):
            say(f"reads: beacon round {round_number + 1}/{ROUNDS} ({len(beacon_rows)} × wrk {seconds}s)")
            for name, server, path in beacon_rows:
                samples[name].append(wrk(servers[server][1] + path, seconds=seconds))
        for name, rounds in samples.items():
            results[name] = _median(rounds)

        reads = {
            "beacon_valkey": ("/api/v1/availability", {}),
            "config": ("/api/v1/config", {}),
            "session_state": (f"/api/v1/sessions/{session_id}", auth),
            "message_history": (f"/api/v1/sessions/{session_id}/messages", auth),
        }
        for server, label, key in (
            ("ours", "ours", "{}"),
            ("ours_django", "ours through Django", "django_{}"),
        ):
            for name, (path, headers) in reads.items():
                if server == "ours" and name == "beacon_valkey":
                    continue  # measured in the rounds above
                base = servers[server][1]
                _check(base + path, headers)
                wrk(base + path, seconds=2, headers=headers)
                say(f"reads: {label} {name}, wrk {seconds}s")
                results[key.format(name)] = wrk(base + path, seconds=seconds, headers=headers)
    finally:
        for process, _ in servers.values():
            procs.stop(process)
    return results


def _check(url, headers):
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, (url, response.status)
        json.loads(response.read())


def targets(results):
    """[{name, measured, met}] for docs and the summary."""
    out = []
    node = results.get("node_beacon")
    for key, share, label in (
        ("beacon_valkey", 1.0, "beacon from Valkey ≥ 100 % of the Node anchor (per process)"),
        ("beacon_valkey_down", 0.5, "beacon with Valkey down ≥ 50 % of the Node anchor"),
    ):
        ours = results.get(key)
        if ours is None or node is None:
            out.append({"name": label, "measured": "not measured", "met": False})
            continue
        ratio = ours["rps"] / node["rps"]
        clean = ours["non_2xx"] == 0 and not ours["socket_errors"]
        out.append(
            {
                "name": label,
                "measured": f"{ours['rps']:,.0f} vs {node['rps']:,.0f} req/s ({ratio:.0%}); "
                f"p99 {ours['p99_ms']} vs {node['p99_ms']} ms",
                "ratio": round(ratio, 3),
                "met": ratio >= share and clean,
            }
        )
    for key, label in (
        ("config", "GET /api/v1/config"),
        ("session_state", "a session's state GET /api/v1/sessions/<id>"),
        ("message_history", "message history GET /api/v1/sessions/<id>/messages"),
    ):
        ours = results.get(key)
        name = f"{label} ≥ {HOT_READ_RPS:,} req/s, p99 ≤ {HOT_READ_P99_MS} ms at 32 connections"
        if ours is None:
            out.append({"name": name, "measured": "not measured", "met": False})
            continue
        out.append(
            {
                "name": name,
                "measured": f"{ours['rps']:,.0f} req/s ({ours['rps'] / HOT_READ_RPS:.0%} of the target), "
                f"p99 {ours['p99_ms']} ms",
                "ratio": round(ours["rps"] / HOT_READ_RPS, 3),
                "met": ours["rps"] >= HOT_READ_RPS
                and ours["p99_ms"] <= HOT_READ_P99_MS
                and ours["non_2xx"] == 0
                and not ours["socket_errors"],
            }
        )
    return out


def write_doc(results, machine):
    """Replace the block between the bench:reads markers in docs/PERFORMANCE.md."""
    rows = [
        ("Node anchor: Express 4 + ioredis, beacon from Redis", results.get("node_beacon")),
        ("Node anchor: constant route", results.get("node_constant")),
        ("ours: beacon, Valkey up", results.get("beacon_valkey")),
        ("ours: beacon, Valkey down (Postgres, 1 query/s)", results.get("beacon_valkey_down")),
        ("ours: GET /api/v1/config", results.get("config")),
        ("ours: session state (Bearer)", results.get("session_state")),
        ("ours: message history, 50 messages (Bearer)", results.get("message_history")),
        ("ours through Django (fast routes off): beacon", results.get("django_beacon_valkey")),
        ("ours through Django: config", results.get("django_config")),
        ("ours through Django: session state", results.get("django_session_state")),
        ("ours through Django: message history", results.get("django_message_history")),
    ]
    lines = [
        START,
        f"Measured by `bench/reads.py` on {machine.get('date')} ({machine.get('nproc')} cores, "
        f"{'quick run' if machine.get('quick') else 'full run'}); `wrk -t1 -c32`, "
        f"{results['seconds']} s per row after a 2 s warm-up, one server process each; the four "
        f"beacon rows are the median of {results.get('rounds', 1)} rounds taken in turns "
        "(every round's req/s in bench/results/reads.json).",
        "",
        "| system / endpoint | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows:
        if r is None:
            lines.append(f"| {label} | not measured | | | |")
        else:
            lines.append(f"| {label} | {r['rps']:,.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['non_2xx']} |")
    lines += ["", "| target (issue 22) | measured | |", "|---|---|---|"]
    for t in targets(results):
        lines.append(f"| {t['name']} | {t['measured']} | {'**MET**' if t['met'] else '**MISSED**'} |")
    lines.append(END)
    block = "\n".join(lines)
    text = DOC.read_text()
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## Hot reads and the Node anchor (issue 22)\n\n" + block + "\n"
    DOC.write_text(text)
