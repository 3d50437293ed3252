"""An idle scheduler tick writes nothing and locks nothing: each job checks first and opens a
write transaction only when something is due (on SQLite, the embedded default, every
transaction takes the one write lock, and the scheduler ticks every second)."""

import re

from django.db import connection

from halobestie import scheduler
from mitras.services import mitra_set_online
from sessions_app import lifecycle

WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b|FOR UPDATE|pg_advisory", re.I)


def test_it_writes_and_locks_nothing_on_a_tick_with_nothing_due(
    transactional_db, make_client_user, make_mitra
):
    # A working day's quiet moment: a mitra online, one session in progress, far from its end.
    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    mitra.refresh_from_db()
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-30")
    lifecycle.session_mark_paid(session_id=session.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    scheduler.run_tick()  # whatever was due after the set-up (a heartbeat flush) is done now
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        results = scheduler.run_tick()
    assert [sql for sql in statements if WRITES.search(sql)] == []
    assert statements  # the jobs did look
    assert results["queue_dispatch"] == []
    assert results["ending_soon"] == 0 and results["sessions_end"] == 0
