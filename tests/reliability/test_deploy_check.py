"""`manage.py check --deploy` is clean with production settings: DEBUG off, real secrets,
ALLOWED_HOSTS set (the two checks silenced in settings.py say why there)."""

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION = {
    "DEBUG": "false",
    "TESTING": "false",
    "DJANGO_SECRET_KEY": "pR7vQ2mX9kL4tW8zN3bJ6hF1dS5gA0yU7eC2iO9rT4wV8xB3nM6qK1jH5lP0sD2f",
    "AUTH_JWT_SECRET": "Ab3De5Gh7Jk9Lm1No3Pq5Rs7Tu9Vw1Xy3Za5Bc7De9Fg1Hi3Jk5Lm7No9Pq1Rs3",
    "ALLOWED_HOSTS": "api.halobestie.id",
    "PUBLIC_BASE_URL": "https://api.halobestie.id",
    "XENDIT_ENABLED": "true",
    "XENDIT_SECRET_KEY": "xnd_development_deploycheck",
    "XENDIT_WEBHOOK_TOKEN": "deploy-check-callback-token",
    "PUSH_ENABLED": "false",
}


def test_it_passes_the_deploy_check_with_production_settings():
    env = {key: value for key, value in os.environ.items() if key not in ("SECURE_HSTS_SECONDS",)}
    env.update(PRODUCTION)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
