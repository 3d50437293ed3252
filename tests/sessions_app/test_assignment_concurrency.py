"""Assignment under real concurrency: 50 workers against Postgres, a small pool of mitras."""

import threading
from collections import Counter

import pytest
from django.db import connection

from halobestie.runtime.services import runtime_config_update
from mitras.services import mitra_set_online
from sessions_app import lifecycle, matching
from sessions_app.models import ChatSession, SessionOffer, Status


@pytest.fixture(autouse=True)
def _patient_pool(transactional_db):
    """50 workers share the test process's pool (20 connections, 5 s timeout). On a loaded
    machine a worker could wait longer than 5 s for a connection and fail with PoolTimeout:
    here it waits instead (up to 2 minutes). What the tests assert is unchanged."""
    pool = connection.pool
    if pool is None:
        yield
        return
    saved = pool.timeout
    pool.timeout = 120.0
    try:
        yield
    finally:
        pool.timeout = saved


def test_it_never_overbooks_under_50_concurrent_workers(transactional_db, make_client_user, make_mitra):
    mitras = [make_mitra(capacity=capacity) for capacity in (1, 2, 3, 3, 1)]  # 10 slots
    for mitra in mitras:
        mitra_set_online(mitra=mitra, is_online=True)
    sessions = [
        lifecycle.session_create(client=make_client_user(), package_code="curhat-15") for _ in range(60)
    ]
    errors = []
    start = threading.Barrier(50)
    chunks = [sessions[i::50] for i in range(50)]

    def worker(chunk):
        try:
            start.wait()
            for session in chunk:
                lifecycle.session_mark_paid(session_id=session.id)
                matching.queue_dispatch()
                # Back to the pool between operations, as a request thread does between requests.
                connection.close()
        except Exception as exc:  # collected: a failure in a thread must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    by_status = Counter(ChatSession.objects.values_list("status", flat=True))
    assert by_status == {Status.OFFERED: 10, Status.MATCHING: 50}
    loads = Counter(ChatSession.objects.filter(status=Status.OFFERED).values_list("mitra_id", flat=True))
    for mitra in mitras:
        assert loads[mitra.id] == mitra.capacity
    offers = Counter(SessionOffer.objects.values_list("session_id", flat=True))
    assert set(offers.values()) == {1}  # no session was offered twice


def test_it_never_overbooks_nor_offers_twice_with_preferences(transactional_db, make_client_user, make_mitra):
    # Nothing relaxes while the test runs: every offer must fit its session's gender wish.
    runtime_config_update(
        values={"matching_timeout_seconds": 86400, "preference_relax_after_seconds": [80000, 80001, 80002]}
    )
    genders = ("female", "male", "female", "male", "female")
    mitras = [
        make_mitra(capacity=capacity, gender=gender, languages=["id", "jv"], topics=["keluarga"])
        for capacity, gender in zip((1, 2, 3, 3, 1), genders, strict=True)
    ]  # 5 slots with a female Bestie, 5 with a male one
    for mitra in mitras:
        mitra_set_online(mitra=mitra, is_online=True)
    sessions = [
        lifecycle.session_create(
            client=make_client_user(),
            package_code="curhat-15",
            gender=("female", "male")[index % 2],
            language="jv",
            topics=["keluarga", "kerja"],
        )
        for index in range(60)
    ]
    errors = []
    start = threading.Barrier(50)
    chunks = [sessions[i::50] for i in range(50)]

    def worker(chunk):
        try:
            start.wait()
            for session in chunk:
                lifecycle.session_mark_paid(session_id=session.id)
                matching.queue_dispatch()
                connection.close()
        except Exception as exc:  # collected: a failure in a thread must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    by_status = Counter(ChatSession.objects.values_list("status", flat=True))
    assert by_status == {Status.OFFERED: 10, Status.MATCHING: 50}
    offered = ChatSession.objects.filter(status=Status.OFFERED).select_related("mitra")
    assert all(session.mitra.gender == session.preferred_gender for session in offered)
    loads = Counter(session.mitra_id for session in offered)
    for mitra in mitras:
        mitra.refresh_from_db()
        assert loads[mitra.id] == mitra.capacity == mitra.load
    offers = Counter(SessionOffer.objects.values_list("session_id", flat=True))
    assert set(offers.values()) == {1}  # no session was offered twice
    assert list(ChatSession.objects.exclude(relaxed_preferences=[]).values_list("id", flat=True)) == []
