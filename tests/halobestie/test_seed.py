import io

from django.core.management import call_command
from django.test import override_settings

from halobestie.accounts.models import User
from halobestie.runtime.models import RuntimeConfig
from mitras.models import Mitra


@override_settings(ADMIN_EMAIL="boss@halobestie.test", ADMIN_PASSWORD="first-password-123")
def test_it_seeds_idempotently():
    call_command("seed", "--demo", stdout=io.StringIO())
    call_command("seed", "--demo", stdout=io.StringIO())
    assert User.objects.filter(email="boss@halobestie.test", is_superuser=True).count() == 1
    assert Mitra.objects.count() == 3
    assert User.objects.filter(role="client").count() == 1
    assert RuntimeConfig.objects.get().values["default_capacity"] == 3


def test_it_updates_the_admin_password():
    with override_settings(ADMIN_EMAIL="boss@halobestie.test", ADMIN_PASSWORD="first-password-123"):
        call_command("seed", stdout=io.StringIO())
    with override_settings(ADMIN_EMAIL="boss@halobestie.test", ADMIN_PASSWORD="second-password-456"):
        call_command("seed", stdout=io.StringIO())
    admin = User.objects.get(email="boss@halobestie.test")
    assert admin.check_password("second-password-456")
    assert not admin.check_password("first-password-123")


def test_it_keeps_what_staff_saved_when_seeding_again():
    from halobestie.runtime.services import runtime_config_update

    call_command("seed", stdout=io.StringIO())
    runtime_config_update(values={**RuntimeConfig.objects.get().values, "offer_timeout_seconds": 90})
    call_command("seed", stdout=io.StringIO())
    assert RuntimeConfig.objects.get().values["offer_timeout_seconds"] == 90


@override_settings(
    PUBLIC_PORT=3160, INTERNAL_PORT=3161, ADMIN_EMAIL="boss@halobestie.test", ADMIN_PASSWORD="x-123456789"
)
def test_it_prints_the_ports_the_listeners_use():
    out = io.StringIO()
    call_command("seed", "--demo", stdout=out)
    text = out.getvalue()
    assert "POST http://127.0.0.1:3160/api/v1/auth/mitra/login" in text
    assert "staff:  http://127.0.0.1:3161/admin/ as boss@halobestie.test" in text
    assert ":3000" not in text and ":3001" not in text
