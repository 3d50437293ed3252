"""`manage.py seed [--demo]`: idempotent defaults for a fresh or existing database."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from halobestie.accounts.models import Role, User
from halobestie.runtime.services import runtime_config_ensure_defaults
from halobestie.staff_roles import ensure_staff_groups
from mitras.models import Mitra
from mitras.services import mitra_create

DEMO_MITRAS = (
    (
        "+6281100000001",
        "Bestie Ayu",
        "Pendengar sabar untuk urusan keluarga dan kerja.",
        ["keluarga", "kerja"],
    ),
    (
        "+6281100000002",
        "Bestie Raka",
        "Siap menemani cerita soal kuliah dan pertemanan.",
        ["kuliah", "pertemanan"],
    ),
    (
        "+6281100000003",
        "Bestie Sari",
        "Teman curhat soal hubungan dan kesehatan mental.",
        ["hubungan", "kesehatan mental"],
    ),
)
DEMO_MITRA_PASSWORD = "bestie-demo-2026"
DEMO_CLIENT_PHONE = "+6281200000001"


class Command(BaseCommand):
    help = "Load defaults (runtime config, staff groups, the admin); --demo adds demo users."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Add demo mitras and a demo client.")

    def handle(self, *args, demo=False, **options):
        runtime_config_ensure_defaults()
        self.stdout.write("Runtime config: defaults in place.")
        self._seed_admin()
        self._seed_groups()
        if demo:
            self._seed_demo()

    def _seed_admin(self):
        email, password = settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD
        if not email or not password:
            self.stdout.write("Admin: ADMIN_EMAIL/ADMIN_PASSWORD not set, no admin created.")
            return
        hashed = make_password(password)  # slow on purpose: before the transaction
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_superuser(email=email, password=None)
                user.password = hashed
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin: created {email}.")
                return
            user.role, user.is_staff, user.is_superuser, user.is_active = Role.STAFF, True, True, True
            user.password = hashed
            user.save()
            self.stdout.write(f"Admin: updated {email}.")

    def _seed_groups(self):
        ensure_staff_groups()
        self.stdout.write("Staff groups: in place.")

    def _seed_demo(self):
        if not settings.DEBUG and not settings.TESTING:
            raise CommandError("--demo is for development (DEBUG on) only.")
        from mitras.models import WorkingHours
        from mitras.schedule import working_hours_replace

        for phone, name, bio, topics in DEMO_MITRAS:
            if not Mitra.objects.filter(user__phone=phone).exists():
                mitra_create(
                    phone=phone, password=DEMO_MITRA_PASSWORD, display_name=name, bio=bio, topics=topics
                )
            mitra = Mitra.objects.get(user__phone=phone)
            if not WorkingHours.objects.filter(mitra=mitra).exists():
                # Every day 08:00–22:00 WIB: the demo Besties have bookable slots
                # (GET /api/v1/mitras/{id}/slots) and a beacon `next_available_at`.
                working_hours_replace(
                    mitra=mitra,
                    intervals=[{"weekday": d, "start": "08:00", "end": "22:00"} for d in range(1, 8)],
                )
        if not User.objects.filter(phone=DEMO_CLIENT_PHONE).exists():
            User.objects.create_user(phone=DEMO_CLIENT_PHONE, role=Role.CLIENT, display_name="Klien Demo")
        public = f"http://127.0.0.1:{settings.PUBLIC_PORT}"
        internal = f"http://127.0.0.1:{settings.INTERNAL_PORT}"
        self.stdout.write(
            f"Demo data in place. Public listener {public} (PUBLIC_PORT), internal {internal}"
            " (INTERNAL_PORT). Log in as:\n"
            f'  client: POST {public}/api/v1/auth/otp/request {{"phone": "{DEMO_CLIENT_PHONE}"}}, then\n'
            f"          POST {public}/api/v1/auth/otp/verify with code {settings.OTP_TEST_CODE}"
            " (the test bypass, FAZPASS_ENABLED=false)\n"
            + "".join(
                f'  mitra:  POST {public}/api/v1/auth/mitra/login {{"phone": "{phone}", '
                f'"password": "{DEMO_MITRA_PASSWORD}"}} ({name})\n'
                for phone, name, _, _ in DEMO_MITRAS
            )
            + f"  staff:  {internal}/admin/ as {settings.ADMIN_EMAIL or '(ADMIN_EMAIL)'}"
        )
