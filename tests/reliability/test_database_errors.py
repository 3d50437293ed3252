"""Database errors told apart: a lock wait past DATABASE_LOCK_TIMEOUT_MS is `503 database_timeout`
(through a real server), a deadlock `409 database_conflict` (real threads on Postgres); only a
connection failure is `database_unavailable` (tests/reliability/test_postgres_restart.py). The log
line names the exception class and SQLSTATE, never the statement's parameters or the body."""

import json
import threading

import psycopg
import pytest
import requests
from django.db import OperationalError, connection

from halobestie.accounts.models import User
from halobestie.accounts.tokens import tokens_for
from halobestie.errors import DatabaseConflict, database_error_as_service_error
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def _dsn():
    settings_dict = connection.settings_dict
    return (
        f"host={settings_dict['HOST'] or '127.0.0.1'} port={settings_dict['PORT'] or 5432} "
        f"dbname={settings_dict['NAME']} user={settings_dict['USER']}"
    )


def test_it_answers_a_lock_timeout_with_its_own_code_and_logs_no_parameters(make_client_user, tmp_path):
    user = make_client_user()
    before = User.objects.get(pk=user.pk).display_name
    secret_name = "Nama Rahasia Sekali"
    log_path = tmp_path / "public.log"
    access = tokens_for(user)["access"]
    env = server_env(DATABASE_LOCK_TIMEOUT_MS="300")
    with (
        serve_process("public", env=env, log_path=log_path) as (_, base),
        psycopg.connect(_dsn(), autocommit=False) as holder,
    ):
        holder.execute("SELECT id FROM accounts_user WHERE id = %s FOR UPDATE", [user.pk])
        answer = requests.patch(
            f"{base}/api/v1/me", json={"display_name": secret_name},
            headers={"Authorization": f"Bearer {access}"}, timeout=20,
        )  # fmt: skip
        holder.rollback()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "database_timeout"
    assert answer.headers["Retry-After"] == "1"
    assert User.objects.get(pk=user.pk).display_name == before
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    logged = [line for line in lines if line["msg"] == "database timeout"]
    assert [(line["error"], line["sqlstate"], line["kind"]) for line in logged] == [
        ("LockNotAvailable", "55P03", "lock_timeout")
    ]
    assert "database unavailable" not in [line["msg"] for line in lines]
    assert secret_name not in log_path.read_text()


def test_it_answers_a_deadlock_with_database_conflict(make_client_user):
    first, second = make_client_user(), make_client_user()
    barrier = threading.Barrier(2)
    errors = []

    def lock(ids):
        # Two connections of their own (not the pool's, which the whole suite's threads share):
        # the same two rows locked in opposite orders, so Postgres kills one transaction. Its
        # error reaches us as Django's OperationalError caused by psycopg's, as Django wraps it.
        with psycopg.connect(_dsn()) as raw:
            try:
                with raw.transaction():
                    for index, user_id in enumerate(ids):
                        raw.execute(
                            f"SELECT id FROM {User._meta.db_table} WHERE id = %s FOR UPDATE", [user_id]
                        )
                        if index == 0:
                            barrier.wait(timeout=30)
            except psycopg.OperationalError as exc:
                try:
                    raise OperationalError(str(exc)) from exc
                except OperationalError as wrapped:
                    errors.append(wrapped)

    threads = [
        threading.Thread(target=lock, args=([first.pk, second.pk],)),
        threading.Thread(target=lock, args=([second.pk, first.pk],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 1
    answer = database_error_as_service_error(errors[0])
    assert isinstance(answer, DatabaseConflict)
    assert (answer.status_code, answer.code) == (409, "database_conflict")
