"""The cutover window's settings refuse to start half configured."""

from tests.halobestie.test_settings import run_settings

REAL = {
    "DEBUG": "false", "DJANGO_SECRET_KEY": "s" * 40, "AUTH_JWT_SECRET": "j" * 40, "PUSH_ENABLED": "false",
    # DEBUG off needs Xendit configured (issue 15).
    "XENDIT_ENABLED": "true", "XENDIT_SECRET_KEY": "xnd_test_key", "XENDIT_WEBHOOK_TOKEN": "w" * 32,
}  # fmt: skip


def test_it_refuses_a_legacy_secret_without_the_end_of_the_window():
    result = run_settings(**REAL, LEGACY_JWT_SECRET="o" * 40, LEGACY_JWT_ACCEPT_UNTIL="")

    assert result.returncode != 0
    assert "LEGACY_JWT_ACCEPT_UNTIL must be an ISO-8601 moment with a UTC offset" in result.stderr


def test_it_refuses_an_end_of_the_window_without_an_offset():
    result = run_settings(**REAL, LEGACY_JWT_SECRET="o" * 40, LEGACY_JWT_ACCEPT_UNTIL="2027-01-31T00:00:00")

    assert result.returncode != 0
    assert "LEGACY_JWT_ACCEPT_UNTIL" in result.stderr


def test_it_refuses_the_new_backends_secret_as_the_legacy_one():
    result = run_settings(
        **REAL, LEGACY_JWT_SECRET="j" * 40, LEGACY_JWT_ACCEPT_UNTIL="2027-01-31T00:00:00+00:00"
    )

    assert result.returncode != 0
    assert "LEGACY_JWT_SECRET must differ from AUTH_JWT_SECRET" in result.stderr


def test_it_starts_with_a_legacy_secret_and_a_window():
    result = run_settings(
        **REAL, LEGACY_JWT_SECRET="o" * 40, LEGACY_JWT_ACCEPT_UNTIL="2027-01-31T00:00:00+00:00"
    )

    assert result.returncode == 0, result.stderr
