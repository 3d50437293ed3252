"""A mitra's load column (`Mitra.load`) always equals the sessions occupying it (offered + active)."""

import contextlib
import random
from datetime import timedelta

from django.utils import timezone

from halobestie.errors import Conflict
from mitras.models import Mitra
from mitras.services import mitra_deactivate
from sessions_app import lifecycle, matching, timers
from sessions_app.models import OPEN_STATUSES, ChatSession, Status
from sessions_app.selectors import mitra_session_loads


def assert_loads_match():
    counted = mitra_session_loads()
    columns = dict(Mitra.objects.values_list("id", "load"))
    assert columns == {mitra_id: counted.get(mitra_id, 0) for mitra_id in columns}


def test_it_keeps_the_load_column_equal_to_the_count_through_random_operations(
    make_client_user, online_mitra, make_staff
):
    rng = random.Random(17)
    mitras = [online_mitra(capacity=capacity) for capacity in (1, 2, 3)]
    clients = [make_client_user() for _ in range(8)]
    staff = make_staff("admin")

    def open_session(client):
        if ChatSession.objects.filter(client=client, status__in=OPEN_STATUSES).exists():
            return
        session = lifecycle.session_create(client=client, package_code="curhat-15")
        lifecycle.session_mark_paid(session_id=session.id)

    def pick(status):
        ids = list(ChatSession.objects.filter(status=status).values_list("id", flat=True))
        return rng.choice(ids) if ids else None

    def offered_action(action):
        session_id = pick(Status.OFFERED)
        if session_id is None:
            return
        session = ChatSession.objects.select_related("mitra", "client").get(pk=session_id)
        if action == "accept":
            lifecycle.session_accept(session_id=session_id, mitra=session.mitra)
        elif action == "decline":
            lifecycle.session_decline(session_id=session_id, mitra=session.mitra)
        elif action == "cancel":
            lifecycle.session_end(session_id=session_id, actor=session.client)
        else:  # the offer window lapses
            ChatSession.objects.filter(pk=session_id).update(offer_expires_at=timezone.now())
            timers.offers_expire_due(now=timezone.now() + timedelta(seconds=1))

    def active_action(action):
        session_id = pick(Status.ACTIVE)
        if session_id is None:
            return
        session = ChatSession.objects.select_related("mitra", "client").get(pk=session_id)
        if action == "end_client":
            lifecycle.session_end(session_id=session_id, actor=session.client)
        elif action == "end_mitra":
            lifecycle.session_end(session_id=session_id, actor=session.mitra.user)
        elif action == "end_staff":
            lifecycle.session_end(session_id=session_id, actor=staff)
        else:  # the time is up
            timers.sessions_end_due(now=session.ends_at + timedelta(seconds=1))

    operations = [
        lambda: open_session(rng.choice(clients)),
        lambda: open_session(rng.choice(clients)),
        lambda: offered_action("accept"),
        lambda: offered_action("decline"),
        lambda: offered_action("cancel"),
        lambda: offered_action("expire"),
        lambda: active_action("end_client"),
        lambda: active_action("end_mitra"),
        lambda: active_action("end_staff"),
        lambda: active_action("expire"),
        lambda: matching.queue_dispatch(),
    ]
    for _ in range(150):
        # An illegal move (Conflict) changes nothing; the loads must still match.
        with contextlib.suppress(Conflict):
            rng.choice(operations)()
        assert_loads_match()

    mitra_deactivate(mitra=mitras[2], actor=staff)  # its offers go back, its active sessions end
    assert_loads_match()
    assert Mitra.objects.get(pk=mitras[2].pk).load == 0
    assert (
        sum(Mitra.objects.values_list("load", flat=True))
        == ChatSession.objects.filter(status__in=[Status.OFFERED, Status.ACTIVE]).count()
    )
