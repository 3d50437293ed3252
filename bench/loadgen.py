"""The load generator: a separate process (so its CPU is not the runner's), asyncio + uvloop +
the `websockets` client.

`python -m bench.loadgen CONFIG.json RESULT.json`, CONFIG:
  mode        "chat" (our /ws/v1/, Bearer header) | "relay" (baselines, ?user=<id>) | "idle"
  client_url, mitra_url   where the client and the mitra sockets go (two processes)
  pairs       [[session_id, client_user_id, client_token, mitra_user_id, mitra_token], …]
  steps       [{"rate": total msg/s, "seconds": s, "record": bool, "label": str}]
  stop_when_failing (optional) {"p99_ms": limit, "retries": n}: after a recorded step with a p99
              over the limit or a loss (run again up to n times first), the remaining steps are skipped
  server_pids CPU is read from these (psutil) at the start and end of each step
  postgres_pid (optional) the postmaster: the CPU of the whole PostgreSQL server (its backends,
              live and ended) per step, as `postgres_cpu_ms_per_msg` (all of that server's work:
              meaningful when the bench has the server to itself)
  idle_sockets (mode idle) how many sockets to open, cycling through the pairs' tokens

Each side of each pair sends `message.send` at a steady rate (random phase) with a unique
client_msg_id; latency is send → the OTHER side's `message.new` with that id, on one monotonic
clock (same process). A message not delivered within `grace` seconds after its step is lost.
"""

import asyncio
import json
import os
import random
import sys
import time

import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BODY = "halo kak, hari ini aku capek banget sama kerjaan"
CONNECT_CONCURRENCY = 64
RETRY_PAUSE_SECONDS = 5


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def progress(text):
    print(f"    {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, config):
        self.config = config
        self.mode = config["mode"]
        self.sockets = []  # (ws, own user id, peer user id, session id)
        self.expected = {}  # client_msg_id -> (sent at, step index, recipient socket index)
        self.latencies = {}  # step -> [seconds]
        self.acks = {}
        self.errors = {}
        self.counter = 0
        self.step = -1
        self.closed = {}  # step -> sockets found closed by the server
        self.close_codes = {}
        self.refused = {}  # step -> sends refused with an error frame naming them

    async def open_one(self, url, user_id, token):
        if self.config.get("socket_mode", self.mode) == "chat":
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=60,
                max_size=None,
                compression=self.config.get("compression"),  # "deflate": offered, as the apps do
                ping_interval=None,
            )
        else:
            ws = await connect(
                f"{url}?user={user_id}", open_timeout=60, max_size=None, compression=None, ping_interval=None
            )
        hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if hello.get("type") != "hello":
            raise RuntimeError(f"no hello: {hello}")
        return ws

    async def open_all(self):
        pairs = self.config["pairs"]
        plan = []
        for session_id, client_id, client_token, mitra_id, mitra_token in pairs:
            plan.append((self.config["client_url"], client_id, client_token, mitra_id, session_id))
            plan.append((self.config["mitra_url"], mitra_id, mitra_token, client_id, session_id))
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        done = 0
        started = time.monotonic()

        async def one(entry):
            nonlocal done
            url, user_id, token, peer, session_id = entry
            async with limit:
                ws = await self.open_one(url, user_id, token)
            done += 1
            if done % 500 == 0:
                progress(f"{done}/{len(plan)} sockets open")
            return (ws, user_id, peer, session_id)

        self.sockets = await asyncio.gather(*(one(e) for e in plan))
        return time.monotonic() - started

    async def receive(self, index):
        ws = self.sockets[index][0]
        try:
            async for text in ws:
                if '"message.new"' in text:
                    frame = json.loads(text)
                    entry = self.expected.get(frame.get("client_msg_id"))
                    if entry is not None and entry[2] == index:
                        del self.expected[frame["client_msg_id"]]
                        self.latencies[entry[1]].append(time.monotonic() - entry[0])
                elif '"message.ack"' in text:
                    self.acks[self.step] = self.acks.get(self.step, 0) + 1
                elif '"error"' in text:
                    frame = json.loads(text)
                    code = frame.get("code", "?")
                    self.errors.setdefault(self.step, {}).setdefault(code, 0)
                    self.errors[self.step][code] += 1
                    # A send refused (overloaded, rate_limited): not stored, never to be delivered;
                    # counted as refused (and an error of its step), not as lost.
                    entry = self.expected.pop(frame.get("ref"), None) if frame.get("ref") else None
                    if entry is not None:
                        self.refused[entry[1]] = self.refused.get(entry[1], 0) + 1
        except Exception:
            pass

    async def send_loop(self, index, interval, until, step, sent):
        ws, user_id, peer, session_id = self.sockets[index]
        peer_index = index + 1 if index % 2 == 0 else index - 1
        next_at = time.monotonic() + random.random() * interval
        while next_at < until:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.counter += 1
            cmid = f"{self.config.get('run_id', 'b')}-{self.counter}"
            frame = json.dumps(
                {
                    "type": "message.send",
                    "session_id": session_id,
                    "client_msg_id": cmid,
                    "body": BODY,
                    "to": peer,
                }
            )
            self.expected[cmid] = (time.monotonic(), step, peer_index)
            try:
                await ws.send(frame)
            except ConnectionClosed as exc:
                # The server closed the socket (e.g. 1012): counted, and this socket stops sending.
                del self.expected[cmid]
                code = exc.rcvd.code if exc.rcvd else None
                self.closed[step] = self.closed.get(step, 0) + 1
                self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1
                return
            sent[0] += 1
            next_at += interval

    async def run_step(self, number, step):
        pids = self.config.get("server_pids", [])
        me = psutil.Process()
        self.step = number
        self.latencies[number] = []
        sockets = len(self.sockets)
        interval = sockets / step["rate"]
        sent = [0]
        cpu_before = _cpu(pids)
        postgres_before = _postgres_cpu(self.config.get("postgres_pid"))
        own_before = sum(me.cpu_times()[:2])
        machine_before = psutil.cpu_times()
        started = time.monotonic()
        until = started + step["seconds"]
        await asyncio.gather(*(self.send_loop(i, interval, until, number, sent) for i in range(sockets)))
        elapsed = time.monotonic() - started
        cpu = _cpu(pids) - cpu_before
        postgres = _postgres_cpu(self.config.get("postgres_pid"))
        if postgres is not None and postgres_before is not None:
            postgres -= postgres_before
        else:
            postgres = None
        own = sum(me.cpu_times()[:2]) - own_before
        machine_after = psutil.cpu_times()
        # Busy cores of the whole machine (servers, Postgres, Valkey, this generator).
        busy = sum(machine_after) - sum(machine_before)
        busy -= (machine_after.idle - machine_before.idle) + (machine_after.iowait - machine_before.iowait)
        # Let in-flight messages arrive; what has not arrived after the grace period is lost.
        deadline = time.monotonic() + self.config.get("grace", 5)
        while time.monotonic() < deadline and any(e[1] == number for e in self.expected.values()):
            await asyncio.sleep(0.1)
        lost = [cmid for cmid, e in self.expected.items() if e[1] == number]
        for cmid in lost:
            del self.expected[cmid]
        latencies = self.latencies[number]
        result = {
            "label": step.get("label", ""),
            "target_rate": step["rate"],
            "seconds": round(elapsed, 2),
            "sockets": sockets,
            "sent": sent[0],
            "sent_per_s": round(sent[0] / elapsed, 1),
            "delivered": len(latencies),
            "delivered_per_s": round(len(latencies) / elapsed, 1),
            "lost": len(lost),
            "acks": self.acks.get(number, 0),
            "refused": self.refused.get(number, 0),
            "errors": self.errors.get(number, {}),
            "sockets_closed_by_server": self.closed.get(number, 0),
            "close_codes": dict(self.close_codes),
            "p50_ms": _ms(percentile(latencies, 0.50)),
            "p95_ms": _ms(percentile(latencies, 0.95)),
            "p99_ms": _ms(percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies) if latencies else None),
            "server_cpu_s": round(cpu, 2),
            "server_cpu_ms_per_msg": round(1000 * cpu / sent[0], 3) if sent[0] else None,
            "server_cpu_cores": round(cpu / elapsed, 2),
            "postgres_cpu_ms_per_msg": _per_message(postgres, sent[0]),
            "postgres_cpu_cores": round(postgres / elapsed, 2) if postgres is not None else None,
            "loadgen_cpu_cores": round(own / elapsed, 2),
            "machine_busy_cores": round(busy / elapsed, 2),
            "record": step.get("record", True),
        }
        progress(
            f"{result['label'] or 'step'}: {result['sent_per_s']:.0f} msg/s sent, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, lost {result['lost']}, "
            f"server CPU {result['server_cpu_ms_per_msg']} ms/msg, errors {result['errors']}"
        )
        return result

    async def run(self):
        connect_seconds = await self.open_all()
        progress(f"{len(self.sockets)} sockets open in {connect_seconds:.1f}s")
        receivers = [asyncio.create_task(self.receive(i)) for i in range(len(self.sockets))]
        results = []
        stop_after = self.config.get("stop_when_failing")
        number = 0
        for step in self.config["steps"]:
            # A recorded step that fails is run again up to `retries` times before the climb stops
            # (every system alike): one 12 s step of a shared 2-core machine can fail on a
            # neighbour's burst or a checkpoint, and the climb would then never see the next rates.
            tries = 1 + (stop_after.get("retries", 0) if stop_after else 0)
            for attempt in range(tries):
                if attempt:
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)  # the failed try's backlog drains first
                labelled = dict(
                    step, label=step.get("label", "") + (f" (try {attempt + 1})" if attempt else "")
                )
                result = await self.run_step(number, labelled)
                number += 1
                results.append(result)
                if not (stop_after and result["record"]) or _passes(result, stop_after):
                    break
            if stop_after and result["record"] and not _passes(result, stop_after):
                progress(f"stopping: p99 over {stop_after['p99_ms']} ms or loss at {step['rate']} msg/s")
                break
        await asyncio.gather(*(ws.close() for ws, *_ in self.sockets), return_exceptions=True)
        for task in receivers:
            task.cancel()
        return {"connect_seconds": round(connect_seconds, 1), "steps": results}

    async def idle(self):
        """Open `idle_sockets` sockets (client tokens, several per user), report, hold until stdin
        closes or a line arrives."""
        pairs = self.config["pairs"]
        total = self.config["idle_sockets"]
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        opened = []
        started = time.monotonic()

        async def one(number):
            session_id, client_id, client_token, _, _ = pairs[number % len(pairs)]
            async with limit:
                opened.append(await self.open_one(self.config["client_url"], client_id, client_token))
            if len(opened) % 1000 == 0:
                progress(f"{len(opened)}/{total} idle sockets open")

        await asyncio.gather(*(one(n) for n in range(total)))
        print(
            json.dumps({"opened": len(opened), "seconds": round(time.monotonic() - started, 1)}), flush=True
        )
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        return {"opened": len(opened)}


def _passes(result, limits):
    return result["lost"] == 0 and result["p99_ms"] is not None and result["p99_ms"] <= limits["p99_ms"]


def _cpu(pids):
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _per_message(seconds, messages):
    return round(1000 * seconds / messages, 3) if seconds is not None and messages else None


def _postgres_cpu(postmaster_pid):
    """CPU seconds of a PostgreSQL server so far: the postmaster's own, its ended children's
    (children_user/system: the backends it has reaped) and its live children's."""
    if not postmaster_pid:
        return None
    try:
        postmaster = psutil.Process(postmaster_pid)
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = postmaster.children()
    except psutil.Error:
        return None
    for child in children:
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def main():
    config_path, result_path = sys.argv[1], sys.argv[2]
    with open(config_path) as file:
        config = json.load(file)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    bench = Bench(config)
    result = asyncio.run(bench.idle() if config["mode"] == "idle" else bench.run())
    with open(result_path, "w") as file:
        json.dump(result, file)
    os._exit(0)


if __name__ == "__main__":
    main()
