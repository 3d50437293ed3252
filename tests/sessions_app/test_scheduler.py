"""Two scheduler loops at once: every timer fires exactly once."""

import threading
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from halobestie import scheduler
from mitras.services import mitra_set_online
from sessions_app import lifecycle
from sessions_app.models import ChatSession, SessionEvent, Status


def test_it_fires_every_timer_once_with_two_schedulers(transactional_db, make_client_user, make_mitra):
    mitra = make_mitra(capacity=50)
    mitra_set_online(mitra=mitra, is_online=True)
    mitra.refresh_from_db()
    sessions = []
    for _ in range(20):
        session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
        lifecycle.session_mark_paid(session_id=session.id)
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        sessions.append(session)
    # all are due for the ending-soon warning and the end at the same instant
    later = timezone.now() + timedelta(minutes=16)
    errors = []
    barrier = threading.Barrier(2)

    def loop():
        try:
            barrier.wait()
            for _ in range(3):
                scheduler.run_tick(now=later)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert ChatSession.objects.filter(status=Status.ENDED).count() == 20
    for session in sessions:
        kinds = list(SessionEvent.objects.filter(session=session).values_list("kind", flat=True))
        assert kinds.count("ending_soon") == 1
        assert kinds.count("ended") == 1
