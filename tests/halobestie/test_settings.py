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


XENDIT = {"XENDIT_ENABLED": "true", "XENDIT_SECRET_KEY": "xnd_test_key", "XENDIT_WEBHOOK_TOKEN": "w" * 32}


def test_it_starts_with_real_secrets():
    result = run_settings(
        DEBUG="false", DJANGO_SECRET_KEY="s" * 40, AUTH_JWT_SECRET="j" * 40, PUSH_ENABLED="false", **XENDIT
    )
    assert result.returncode == 0, result.stderr


def test_it_refuses_to_start_without_debug_when_pushes_would_go_nowhere():
    result = run_settings(
        DEBUG="false",
        DJANGO_SECRET_KEY="s" * 40,
        AUTH_JWT_SECRET="j" * 40,
        FIREBASE_SERVICE_ACCOUNT_PATH="",
        **XENDIT,
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
        **XENDIT,
    )
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).splitlines()
    lines = [json.loads(line) for line in output if line.startswith("{")]
    assert [
        (line["level"], line["msg"]) for line in lines if line["logger"] == "halobestie.integrations.push"
    ] == [("WARNING", "pushes disabled (PUSH_ENABLED=false): pushes are only logged")]


def test_it_refuses_to_start_without_xendit_when_debug_is_off():
    secrets = {"DJANGO_SECRET_KEY": "s" * 40, "AUTH_JWT_SECRET": "j" * 40, "PUSH_ENABLED": "false"}
    result = run_settings(DEBUG="false", XENDIT_ENABLED="false", **secrets)
    assert result.returncode != 0
    assert "XENDIT_ENABLED must be true when DEBUG is off" in result.stderr
    result = run_settings(DEBUG="false", **{**secrets, **XENDIT, "XENDIT_WEBHOOK_TOKEN": ""})
    assert result.returncode != 0
    assert "XENDIT_WEBHOOK_TOKEN must be set when DEBUG is off" in result.stderr
    result = run_settings(DEBUG="false", **{**secrets, **XENDIT, "XENDIT_SECRET_KEY": ""})
    assert result.returncode != 0
    assert "XENDIT_SECRET_KEY must be set when DEBUG is off" in result.stderr
    both = run_settings(DEBUG="false", PAYMENTS_LOCAL_CHECKOUT_UNSAFE="true", **{**secrets, **XENDIT})
    assert both.returncode != 0
    assert "PAYMENTS_LOCAL_CHECKOUT_UNSAFE and XENDIT_ENABLED are both on" in both.stderr


def test_it_has_no_otp_test_code_and_no_webhook_token_by_default_without_debug():
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(repr(s.OTP_TEST_CODE), repr(s.XENDIT_WEBHOOK_TOKEN))"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "TESTING", "PYTEST_CURRENT_TEST"}}
    env.update(
        DJANGO_SETTINGS_MODULE="halobestie.settings", TESTING="false", DEBUG="false", OTP_TEST_CODE="",
        OTP_TEST_PHONES="+6281200000001", DJANGO_SECRET_KEY="s" * 40, AUTH_JWT_SECRET="j" * 40,
        PAYMENTS_LOCAL_CHECKOUT_UNSAFE="true", XENDIT_ENABLED="false", XENDIT_WEBHOOK_TOKEN="",
        PUSH_ENABLED="false",
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=settings.BASE_DIR
    )
    assert result.stdout.split() == ["''", "''"], result.stderr
    assert "PAYMENTS_LOCAL_CHECKOUT_UNSAFE is on" in result.stderr
    assert "OTP test bypass is on" not in result.stderr


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


def _embedded_settings(code, **overrides):
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL", "SCHEDULER_IN_PROCESS"}
    }
    env.update(DJANGO_SETTINGS_MODULE="halobestie.settings", DEBUG="true", **overrides)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings as s; {code}"],  # noqa: E501
        env=env, capture_output=True, text=True, cwd=settings.BASE_DIR,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_it_sets_sqlite_up_for_concurrent_writers(tmp_path):
    path = tmp_path / "dev" / "db.sqlite3"
    database = _embedded_settings(
        "d = s.DATABASES['default']; o = d['OPTIONS'];"
        " print(d['NAME'], o['transaction_mode'], o['timeout'], o['init_command'])",
        SQLITE_PATH=str(path),
        SQLITE_BUSY_TIMEOUT="12.5",
    )
    assert database == (
        f"{path} IMMEDIATE 12.5 PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        " PRAGMA busy_timeout=12500; PRAGMA temp_store=MEMORY"
    )
    assert path.parent.is_dir()


def test_it_runs_the_scheduler_in_the_public_process_only_without_valkey():
    assert _embedded_settings("print(s.SCHEDULER_IN_PROCESS)") == "True"
    assert (
        _embedded_settings("print(s.SCHEDULER_IN_PROCESS)", VALKEY_URL="redis://127.0.0.1:6379/0") == "False"
    )
    assert _embedded_settings("print(s.SCHEDULER_IN_PROCESS)", SCHEDULER_IN_PROCESS="false") == "False"
