"""Dispatch from two processes against the same Postgres (issue 22: no global lock any more):
each process marks its half of the sessions paid from several threads at the same instant and
dispatches the queue (after each commit, and optionally once more explicitly); together they must
fill every free slot exactly, never overbook a Bestie and never offer one session twice."""

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
from django.db.models import Count, Q

from mitras.models import Mitra
from mitras.services import mitra_set_online
from sessions_app import lifecycle
from sessions_app.models import ChatSession, SessionOffer, Status
from tests.servers import server_env

WORKER = """
import json, os, sys, threading, time
import django
django.setup()
from django.db import connection
from sessions_app import lifecycle, matching

ids, start_at, threads = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
also_dispatch = sys.argv[4] == "yes"
errors = []
def run(chunk):
    try:
        time.sleep(max(0.0, start_at - time.time()))
        for session_id in chunk:
            lifecycle.session_mark_paid(session_id=session_id)
            if also_dispatch:
                matching.queue_dispatch()
            connection.close()
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connection.close()
workers = [threading.Thread(target=run, args=(ids[i::threads],)) for i in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps(errors))
"""


@pytest.mark.parametrize(
    "also_dispatch",
    [
        pytest.param("yes", id="each-payment-then-an-explicit-dispatch"),
        # Only the dispatch each payment asks for after its commit (as in a public process):
        # a payment committed while a round runs must be placed by that round or a later one.
        pytest.param("no", id="only-the-dispatch-after-commit"),
    ],
)
def test_two_processes_dispatching_at_once_never_overbook_nor_offer_twice(
    transactional_db, make_client_user, make_mitra, also_dispatch
):
    mitras = [make_mitra(capacity=capacity) for capacity in (1, 2, 3, 3, 1, 2, 3, 1)]  # 16 slots
    for mitra in mitras:
        mitra_set_online(mitra=mitra, is_online=True)
    sessions = [
        lifecycle.session_create(client=make_client_user(), package_code="curhat-15") for _ in range(40)
    ]
    ids = [str(session.id) for session in sessions]
    start_at = time.time() + 4  # both processes have set Django up by then
    env = server_env(DJANGO_SETTINGS_MODULE="halobestie.settings")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(ids[half::2]), str(start_at), "4", also_dispatch],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for half in (0, 1)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == []

    by_status = Counter(ChatSession.objects.values_list("status", flat=True))
    assert by_status == {Status.OFFERED: 16, Status.MATCHING: 24}
    held = dict(
        Mitra.objects.annotate(
            held=Count("chat_sessions", filter=Q(chat_sessions__status__in=["offered", "active"]))
        ).values_list("id", "held")
    )
    for mitra in mitras:
        mitra.refresh_from_db()
        assert held[mitra.id] == mitra.capacity == mitra.load
    offers = Counter(SessionOffer.objects.values_list("session_id", flat=True))
    assert set(offers.values()) == {1}  # no session was offered twice
    assert len(offers) == 16
