"""Start-up refuses a service account that cannot push to the apps' Firebase project: `manage.py`
(and every server process, which runs the same AppConfig.ready) exits naming the problem."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from .conftest import service_account


def manage_check(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"TESTING", "PYTEST_CURRENT_TEST"}}
    env.update({"DJANGO_SETTINGS_MODULE": "halobestie.settings", "DEBUG": "true"}, **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=60,
    )


@pytest.fixture
def key_file(tmp_path):
    def write(content):
        path = tmp_path / "firebase-sa.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def test_it_refuses_a_service_account_of_another_project(key_file):
    path = key_file(service_account(token_uri="https://oauth2.googleapis.com/token", project_id="other-proj"))

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=path, FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "'other-proj'" in result.stderr
    assert "'my-bestie-876ec'" in result.stderr


def test_it_starts_with_a_service_account_of_the_apps_project(key_file):
    path = key_file(
        service_account(token_uri="https://oauth2.googleapis.com/token", project_id="my-bestie-876ec")
    )

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=path, FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_starts_log_only_without_a_service_account():
    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH="", FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode == 0, result.stderr


def test_it_refuses_a_path_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "nowhere.json")

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=missing, FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode != 0
    assert f"FIREBASE_SERVICE_ACCOUNT_PATH={missing!r}: no such file." in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        {"type": "authorized_user", "project_id": "my-bestie-876ec"},
        {"type": "service_account", "project_id": "my-bestie-876ec", "client_email": "a@b.c"},
    ],
    ids=["not-json", "other-credential", "no-key"],
)
def test_it_refuses_a_file_that_is_not_a_service_account(key_file, content):
    path = key_file(content)

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=path, FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode != 0
    assert f"FIREBASE_SERVICE_ACCOUNT_PATH={path!r}" in result.stderr


def test_it_refuses_a_broken_private_key(key_file):
    info = service_account(token_uri="https://oauth2.googleapis.com/token", project_id="my-bestie-876ec")
    path = key_file({**info, "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"})

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=path, FIREBASE_PROJECT_ID="my-bestie-876ec")

    assert result.returncode != 0
    assert "FIREBASE_SERVICE_ACCOUNT_PATH: the service-account key cannot be used" in result.stderr


def test_it_refuses_a_service_account_without_the_apps_project_id(key_file):
    path = key_file(service_account(token_uri="https://oauth2.googleapis.com/token"))

    result = manage_check(FIREBASE_SERVICE_ACCOUNT_PATH=path, FIREBASE_PROJECT_ID="")

    assert result.returncode != 0
    assert "FIREBASE_PROJECT_ID is empty" in result.stderr
