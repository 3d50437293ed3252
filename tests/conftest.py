"""The shared cast and fixtures. Tests run on real PostgreSQL and Valkey/Redis (make test
provides both); nothing of our own code is mocked."""

import threading

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.test import AsyncClient
from rest_framework.test import APIClient

from halobestie.accounts.models import Role, User
from halobestie.accounts.tokens import tokens_for
from halobestie.server.listeners import INTERNAL, SCOPE_KEY
from tests.servers import ThrowawayValkey

# A test's own threads (a flood of sockets, concurrent payments) that touch the ORM each take a
# connection from Django's pool (20), and a thread that ends without closing it never gives it
# back: a few such tests left the whole suite's later threads waiting for a connection until they
# timed out. Every thread started during the tests closes its connections when it ends, as a
# request does; production threads do so themselves (close_old_connections / connection.close()).
_thread_run = threading.Thread.run


def _run_and_close_connections(self):
    try:
        _thread_run(self)
    finally:
        from django.db import connections

        connections.close_all()


threading.Thread.run = _run_and_close_connections


def pytest_sessionstart(session):
    assert settings.VALKEY_URL, "tests need VALKEY_URL (run them with `make test`)"
    # Same algorithm, few iterations (tests/hashers.py): the full count cost minutes per run.
    from django.contrib.auth import hashers

    settings.PASSWORD_HASHERS = ["tests.hashers.QuickPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


# `make test` runs two workers, a test file at a time each: the run ends when the last file does, so
# the longest files (one to two minutes each) start first instead of last.
_LONGEST_FIRST = (
    "tests/reliability/test_api_fuzz.py",
    "tests/reliability/test_postgres_restart.py",
    "tests/embedded/test_embedded_default.py",
    "tests/reliability/test_authorization_matrix.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: number for number, path in enumerate(_LONGEST_FIRST)}
    # A stable sort: the other files keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(autouse=True)
def _real_postgres(db):
    """Every test gets the database; and it must be PostgreSQL, never the SQLite default."""
    assert connection.vendor == "postgresql", "tests need DATABASE_URL to PostgreSQL (make test)"


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Per-process caches (runtime config) must not leak between tests."""
    from halobestie.runtime.selectors import invalidate_local

    invalidate_local()
    yield
    invalidate_local()


@pytest.fixture
def valkey():
    """A client on the test Valkey; this run's keys are deleted before and after the test."""
    from halobestie.integrations.valkey import get_client

    client = get_client()

    def wipe():
        keys = list(client.scan_iter(match=f"{settings.VALKEY_KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)

    wipe()
    yield client
    wipe()


@pytest.fixture
def api():
    return APIClient()


def auth_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
    return client


@pytest.fixture
def make_client_user():
    counter = iter(range(1, 10_000))

    def make(phone=None, **fields):
        number = next(counter)
        return User.objects.create_user(
            phone=phone or f"+62812{number:08d}", role=Role.CLIENT, display_name=f"Klien {number}", **fields
        )

    return make


@pytest.fixture
def make_mitra():
    from mitras.services import mitra_create

    counter = iter(range(1, 10_000))

    def make(phone=None, password="rahasia-mitra-123", **fields):
        number = next(counter)
        fields.setdefault("display_name", f"Bestie {number}")
        return mitra_create(phone=phone or f"+62811{number:08d}", password=password, **fields)

    return make


@pytest.fixture
def make_staff():
    """A staff user in one of the seeded groups (support, finance, admin)."""
    from django.contrib.auth.models import Group

    from halobestie.staff_roles import ensure_staff_groups

    ensure_staff_groups()
    counter = iter(range(1, 10_000))

    def make(group):
        number = next(counter)
        user = User.objects.create_user(
            email=f"{group}{number}@halobestie.test",
            password="staff-password-123",
            role=Role.STAFF,
            is_staff=True,
        )
        user.groups.add(Group.objects.get(name=group))
        return user

    return make


@pytest.fixture
def internal_client():
    """Requests as the internal listener's ASGI app sees them (the scope carries the mark)."""

    class InternalClient:
        def __init__(self):
            self._client = AsyncClient(**{SCOPE_KEY: INTERNAL})

        def force_login(self, user):
            self._client.force_login(user)

        def __getattr__(self, method):
            return async_to_sync(getattr(self._client, method))

    return InternalClient()


@pytest.fixture
def throwaway_valkey(tmp_path):
    """A Valkey server of the test's own (tests/servers.py): for what would disturb every other
    process on the shared one (CLIENT KILL, a restart, an outage)."""
    server = ThrowawayValkey(tmp_path)
    server.start()
    yield server
    server.kill()
