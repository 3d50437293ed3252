"""Scheduler liveness: a real `manage.py run_scheduler` process serves /healthz and /metrics on
METRICS_PORT; /healthz fails once the last completed tick is older than SCHEDULER_STALE_SECONDS
(here a job hangs on a table lock), and recovers when the loop turns again. Job failures and
durations are counted."""

import subprocess
import sys
import time
from contextlib import contextmanager

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from halobestie import scheduler
from sessions_app.models import ChatSession
from tests.servers import free_port, server_env

STALE_SECONDS = 2.0


@contextmanager
def scheduler_process(env):
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler", "--interval", "0.2"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_status(url, status, *, timeout):
    """Poll until `url` answers `status`; returns that response (fails the test at timeout)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=2)
            if last.status_code == status:
                return last
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} never answered {status} (last: {last and last.status_code})")


def job_durations_above(metrics_text, seconds):
    """How many job runs took longer than `seconds` (from the histogram's buckets)."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "halobestie_scheduler_job_duration_seconds":
            continue
        counts = {}
        below = {}
        for sample in family.samples:
            job = sample.labels.get("job")
            if sample.name.endswith("_count"):
                counts[job] = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == seconds:
                below[job] = sample.value
        total += sum(counts[job] - below.get(job, 0.0) for job in counts)
    return total


def test_it_fails_liveness_when_a_job_hangs_and_recovers_when_the_loop_turns(transactional_db):
    port = free_port()
    env = server_env(METRICS_PORT=port, METRICS_HOST="127.0.0.1", SCHEDULER_STALE_SECONDS=STALE_SECONDS)
    base = f"http://127.0.0.1:{port}"
    with scheduler_process(env) as process:
        healthy = wait_for_status(f"{base}/healthz", 200, timeout=30)
        assert healthy.json()["status"] == "ok"

        # Every tick reads the sessions table: a lock held elsewhere makes a job hang, as a stuck
        # transaction or a dead connection would in production.
        lock = psycopg.connect(env["DATABASE_URL"])
        try:
            lock.execute(f"LOCK TABLE {ChatSession._meta.db_table} IN ACCESS EXCLUSIVE MODE")
            stalled = wait_for_status(f"{base}/healthz", 503, timeout=STALE_SECONDS + 15)
            body = stalled.json()
            assert body["status"] == "stalled"
            assert body["stale_after_seconds"] == STALE_SECONDS
            assert body["seconds_since_last_tick"] > STALE_SECONDS
            assert process.poll() is None, "the process still runs: only the probe tells"
        finally:
            lock.rollback()
            lock.close()

        recovered = wait_for_status(f"{base}/healthz", 200, timeout=30)
        assert recovered.json()["status"] == "ok"
        exposed = requests.get(f"{base}/metrics", timeout=5)
        assert exposed.status_code == 200
        last_tick = [
            sample.value
            for family in text_string_to_metric_families(exposed.text)
            for sample in family.samples
            if sample.name == "halobestie_scheduler_last_tick_timestamp_seconds"
        ]
        assert len(last_tick) == 1 and last_tick[0] > 0
        # The hung job was measured: at least one run took over a second.
        assert job_durations_above(exposed.text, 1.0) >= 1
        assert requests.get(f"{base}/other", timeout=5).status_code == 404


def _failures(job):
    return REGISTRY.get_sample_value("halobestie_scheduler_job_failures_total", {"job": job}) or 0.0


def test_it_counts_a_failing_job_and_still_completes_the_tick(transactional_db):
    before_failures = _failures("offers_expire")
    before_other = _failures("tickets_purge_expired")
    before_runs = (
        REGISTRY.get_sample_value("halobestie_scheduler_job_duration_seconds_count", {"job": "offers_expire"})
        or 0.0
    )
    lock = psycopg.connect(server_env()["DATABASE_URL"])
    try:
        lock.execute(f"LOCK TABLE {ChatSession._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        started = time.time()
        results = scheduler.run_tick()
    finally:
        lock.rollback()
        lock.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert results["offers_expire"] is None
    assert _failures("offers_expire") == before_failures + 1
    assert _failures("tickets_purge_expired") == before_other
    assert (
        REGISTRY.get_sample_value("halobestie_scheduler_job_duration_seconds_count", {"job": "offers_expire"})
        == before_runs + 1
    )
    assert REGISTRY.get_sample_value("halobestie_scheduler_last_tick_timestamp_seconds") >= int(started)
