"""Fixtures of the mitras tests: a clean, seeded mirror, a load setter, hook recorders."""

import pytest

from mitras import hooks, mirror
from mitras.models import Mitra


@pytest.fixture
def fresh_mirror(valkey):
    """This run's Valkey keys wiped, then the mirror seeded (clean, not dirty)."""
    assert mirror.seed_from_postgres()
    yield valkey


class _Loads(dict):
    """Setting `loads[mitra_id] = n` writes the mitra's load column (in the caller's transaction)."""

    def __setitem__(self, mitra_id, value):
        Mitra.objects.filter(pk=mitra_id).update(load=value)
        super().__setitem__(mitra_id, value)


@pytest.fixture
def loads():
    """Set `loads[mitra_id] = n` (then call mirror_capacity_changed inside a transaction, as the
    sessions services do): the mitra's `load` column is written."""
    return _Loads()


@pytest.fixture
def available_calls():
    """The ids `notify_mitra_available` was called with, in order."""
    calls = []
    hooks.on_mitra_available(calls.append)
    yield calls
    hooks.remove_callback(calls.append)


@pytest.fixture
def deactivated_calls():
    calls = []
    hooks.on_mitra_deactivated(calls.append)
    yield calls
    hooks.remove_callback(calls.append)
