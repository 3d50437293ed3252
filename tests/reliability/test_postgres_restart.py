"""PostgreSQL stops under traffic and comes back: requests fail fast with 503
`database_unavailable` in the envelope (never a 500, never a hang) and the same server process
serves again once the database is back. The server runs the production launcher with the
production pool settings against a PostgreSQL cluster this test owns."""

import time

import requests
from django.conf import settings

from tests.reliability.conftest import Traffic, migrate
from tests.servers import serve_process, server_env

PHONE = "+6281299990001"
POOL_TIMEOUT = 2.0


def _login(base_url):
    requests.post(f"{base_url}/api/v1/auth/otp/request", json={"phone": PHONE}, timeout=10).raise_for_status()
    answer = requests.post(
        f"{base_url}/api/v1/auth/otp/verify", json={"phone": PHONE, "code": "123456"}, timeout=10
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access']}"}


def test_it_answers_503_while_postgres_is_down_and_recovers_without_a_restart(throwaway_postgres, tmp_path):
    env = server_env(
        DATABASE_URL=throwaway_postgres.url,
        DATABASE_POOL="true",
        DATABASE_POOL_TIMEOUT=POOL_TIMEOUT,
        DATABASE_CONNECT_TIMEOUT="2",
        OTP_TEST_PHONES=PHONE,
        # Its own Valkey keys: this database's mirror must not overwrite the test run's.
        VALKEY_KEY_PREFIX=f"{settings.VALKEY_KEY_PREFIX}pgfault:",
        CHANNEL_LAYER_PREFIX=f"{settings.CHANNEL_LAYER_PREFIX}-pgfault",
    )
    migrate(env)
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (process, base_url):
        client = _login(base_url)
        paths = [("/api/v1/me", client), ("/api/v1/mitras", {}), ("/api/v1/sessions", client)]
        with Traffic(base_url, paths) as traffic:
            time.sleep(1.0)
            stopping_at = time.monotonic()
            throwaway_postgres.stop()
            stopped_at = time.monotonic()  # pg_ctl returns once the server is down
            time.sleep(4.0)
            starting_at = time.monotonic()  # it may accept connections before pg_ctl returns
            throwaway_postgres.start()
            restarted_at = time.monotonic()
            recovery = traffic.wait_for(lambda a: a.status == 200, timeout=15)
            time.sleep(1.5)
        assert process.poll() is None  # the same process throughout

    before = [a for a in traffic.answers if a.at + a.seconds < stopping_at]
    # Requests wholly inside the outage: sent after the server was down, answered before it began
    # to start again.
    during = [a for a in traffic.answers if stopped_at < a.at and a.at + a.seconds < starting_at]
    after = traffic.since(restarted_at + recovery + 0.5)
    statuses = {a.status for a in traffic.answers}
    print(
        f"\npostgres restart: {len(traffic.answers)} requests, statuses {sorted(statuses)}, "
        f"{sum(a.status == 503 for a in traffic.answers)} x 503, "
        f"slowest {max(a.seconds for a in traffic.answers):.2f}s, "
        f"first 200 {recovery:.2f}s after the database was back"
    )
    assert before and {a.status for a in before} == {200}
    assert during and {(a.status, a.code) for a in during} == {(503, "database_unavailable")}
    assert statuses <= {200, 503}  # no 500, no dropped connection
    assert {a.code for a in traffic.answers if a.status == 503} == {"database_unavailable"}
    # Fail fast: bounded by the pool timeout, never the client's 15 s.
    assert max(a.seconds for a in traffic.answers) < POOL_TIMEOUT + 1.5
    assert recovery < 5.0
    assert after and {a.status for a in after} == {200}
