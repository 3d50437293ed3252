"""Fixtures of the mitras tests: a clean, seeded mirror, a test load counter, hook recorders."""

import pytest

from mitras import hooks, load, mirror


@pytest.fixture
def fresh_mirror(valkey):
    """This run's Valkey keys wiped, then the mirror seeded (clean, not dirty)."""
    assert mirror.seed_from_postgres()
    yield valkey


@pytest.fixture
def loads():
    """A test load counter: set `loads[mitra_id] = n` (then call mirror_capacity_changed inside a
    transaction, as the sessions app does). The registered counter is restored afterwards."""
    previous = load.get_load_counter()
    table = {}

    def counter(mitra_ids):
        return {i: table.get(i, 0) for i in (table if mitra_ids is None else mitra_ids)}

    load.register_load_counter(counter)
    yield table
    load.register_load_counter(previous)


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
