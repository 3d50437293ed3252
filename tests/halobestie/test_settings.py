"""Settings fail loudly on bad values and refuse development secrets in production."""

import json
import os
import subprocess
import sys

from django.conf import settings

CHECK = [sys.executable, "-c", "import django; django.setup()"]


def run_settings(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "TESTING", "PYTEST_CURRENT_TEST"}}
    env.update({"DJANGO_SETTINGS_MODULE": "halobestie.settings", "TESTING": "false"}, **overrides)
    return subprocess.run(CHECK, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)


def test_it_refuses_a_missing_secret_without_debug():
    result = run_settings(DEBUG="false", DJANGO_SECRET_KEY="", AUTH_JWT_SECRET="")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set to a real secret" in result.stderr


def test_it_refuses_the_default_secret_without_debug():
    result = run_settings(DEBUG="false", DJANGO_SECRET_KEY="x" * 40, AUTH_JWT_SECRET=settings.DEV_SECRET)
    assert result.returncode != 0
    assert "AUTH_JWT_SECRET must be set to a real secret" in result.stderr


def test_it_names_a_malformed_variable():
    result = run_settings(DEBUG="true", OTP_TTL_SECONDS="five minutes")
    assert result.returncode != 0
    assert "OTP_TTL_SECONDS" in result.stderr


def test_it_starts_with_real_secrets():
    result = run_settings(
        DEBUG="false", DJANGO_SECRET_KEY="s" * 40, AUTH_JWT_SECRET="j" * 40, PUSH_ENABLED="false"
    )
    assert result.returncode == 0, result.stderr


def test_it_refuses_to_start_without_debug_when_pushes_would_go_nowhere():
    result = run_settings(
        DEBUG="false", DJANGO_SECRET_KEY="s" * 40, AUTH_JWT_SECRET="j" * 40, FIREBASE_SERVICE_ACCOUNT_PATH=""
    )
    assert result.returncode != 0
    assert "FIREBASE_SERVICE_ACCOUNT_PATH is empty and DEBUG is off" in result.stderr
    assert "PUSH_ENABLED=false" in result.stderr


def test_it_starts_without_pushes_only_when_told_and_says_so():
    result = run_settings(
        DEBUG="false",
        DJANGO_SECRET_KEY="s" * 40,
        AUTH_JWT_SECRET="j" * 40,
        FIREBASE_SERVICE_ACCOUNT_PATH="",
        PUSH_ENABLED="false",
    )
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).splitlines()
    lines = [json.loads(line) for line in output if line.startswith("{")]
    assert [
        (line["level"], line["msg"]) for line in lines if line["logger"] == "halobestie.integrations.push"
    ] == [("WARNING", "pushes disabled (PUSH_ENABLED=false): pushes are only logged")]


def test_it_falls_back_to_sqlite_and_memory_layer_without_urls():
    env_code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="halobestie.settings", DEBUG="true")
    result = subprocess.run(
        [sys.executable, "-c", env_code], env=env, capture_output=True, text=True, cwd=settings.BASE_DIR
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
    ], result.stderr
