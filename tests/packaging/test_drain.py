"""Graceful drain of `python -m halobestie.serve` on SIGTERM, as a real process: readiness turns
503 at once, in-flight requests finish, chat sockets close with 1012, the listener stops
accepting, and the process exits 0. Also: readiness is 503 while migrations are unapplied."""

import signal
import threading
import time

import psycopg
import pytest
import requests
from django.db import connection

from halobestie.accounts.tokens import tokens_for
from halobestie.server import health
from sessions_app.models import ChatSession
from tests.realtime.conftest import Socket
from tests.servers import serve_process, server_env, wait_for_lock_waiter


def test_it_drains_on_sigterm_and_exits_zero(transactional_db, active_session, make_client_user, tmp_path):
    session, client, mitra = active_session()
    newcomer = make_client_user()
    env = server_env(DRAIN_SECONDS="1.5", GRACEFUL_SHUTDOWN_SECONDS="15")
    with serve_process("public", env=env, log_path=tmp_path / "server.log") as (process, base):
        assert requests.get(f"{base}/readyz").json() == {"status": "ready"}
        chat = Socket(base, client)
        assert chat.expect_type("hello")["user_id"] == client.id

        # A real request made slow: the newcomer's session list waits on a table lock that the
        # test holds.
        lock = psycopg.connect(env["DATABASE_URL"])
        lock.execute(f"LOCK TABLE {ChatSession._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        slow = {}

        def slow_request():
            slow["response"] = requests.get(
                f"{base}/api/v1/sessions",
                headers={"Authorization": f"Bearer {tokens_for(newcomer)['access']}"},
                timeout=30,
            )

        thread = threading.Thread(target=slow_request)
        thread.start()
        try:
            wait_for_lock_waiter(env["DATABASE_URL"])
            process.send_signal(signal.SIGTERM)
            time.sleep(0.2)

            # Draining: still serving, but not ready, so the load balancer stops routing here.
            readiness = requests.get(f"{base}/readyz", timeout=5)
            assert (readiness.status_code, readiness.json()) == (503, {"status": "draining"})
            assert requests.get(f"{base}/healthz", timeout=5).status_code == 200

            # After the drain period the socket gets 1012 (service restart: the app reconnects
            # to another replica) and the listener accepts no new connection.
            assert chat.wait_closed(timeout=10) == 1012
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{base}/healthz", timeout=2)
            assert thread.is_alive(), "the slow request must still be in flight"
            assert process.poll() is None, "the server must wait for the in-flight request"
        finally:
            lock.rollback()  # releases the lock: the in-flight request completes
            lock.close()
        thread.join(15)
        assert slow["response"].status_code == 200
        assert slow["response"].json()["results"] == []
        assert process.wait(15) == 0


def test_it_is_not_ready_while_migrations_are_unapplied(transactional_db, api):
    """A new image must not take traffic before its one-off migrate: the database is made one
    step behind by hiding its newest applied migration, then restored."""
    health._migrations_applied = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, app, name, applied FROM django_migrations ORDER BY id DESC LIMIT 1")
        newest = cursor.fetchone()
        cursor.execute("DELETE FROM django_migrations WHERE id = %s", [newest[0]])
    try:
        response = api.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "migrations_pending"})
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (id, app, name, applied) VALUES (%s, %s, %s, %s)", newest
            )
    response = api.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
