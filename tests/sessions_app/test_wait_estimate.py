"""The wait estimate (`eta_seconds`) on the REST view and on `queue.position` frames (real Postgres
and Valkey), and the estimator against a simulated evening of arrivals (bench/wait_estimate.py)."""

import asyncio
import statistics
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench import wait_estimate as simulation
from sessions_app import lifecycle, matching, wait_inputs
from sessions_app.events import user_group
from sessions_app.models import Status
from sessions_app.wait_estimate import Chat, QueueState, SessionLengths, Waiting, queue_etas
from tests.conftest import auth_client


def eta_over_rest(session):
    return auth_client(session.client).get(f"/api/v1/sessions/{session.id}").json()["eta_seconds"]


def active_chat(paid_session, mitra, package="curhat-15"):
    session = paid_session(mitra=mitra, allow_any_mitra=False, package=package)
    assert session.mitra_id == mitra.id
    return lifecycle.session_accept(session_id=session.id, mitra=mitra)


def queue_frames(clients, action):
    """The `queue.position` frames the clients' sockets get (through the real channel layer)
    while `action` runs, one per client: {client id: frame}."""

    async def listen():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for client in clients:
            await layer.group_add(user_group(client.id), channel)
        await sync_to_async(action)()
        frames = {}
        while len(frames) < len(clients):
            message = await asyncio.wait_for(layer.receive(channel), timeout=10)
            frame = message["frame"]
            if frame["type"] == "queue.position":
                frames[frame["session_id"]] = frame
        return frames

    return async_to_sync(listen)()


def test_it_estimates_from_the_chat_ahead_and_the_package_length_when_nothing_is_recent(
    paid_session, online_mitra
):
    mitra = online_mitra(capacity=1)
    chat = active_chat(paid_session, mitra)  # 15 minutes, just accepted: the only slot frees in ~900 s
    first = paid_session(package="curhat-30")
    second = paid_session(package="curhat-15")
    # nothing ended recently: each chat is taken to run its whole package
    assert 880 <= eta_over_rest(first) <= 900
    assert 880 + 1800 <= eta_over_rest(second) <= 900 + 1800
    frames = queue_frames([first.client, second.client], lambda: matching.queue_dispatch())
    assert (frames[str(first.id)]["position"], frames[str(second.id)]["position"]) == (1, 2)
    assert 880 <= frames[str(first.id)]["eta_seconds"] <= 900
    assert 880 + 1800 <= frames[str(second.id)]["eta_seconds"] <= 900 + 1800
    assert eta_over_rest(chat) is None  # not waiting


def test_it_learns_from_recently_ended_chats(paid_session, online_mitra):
    mitra = online_mitra(capacity=1)
    for _ in range(5):  # five 15-minute chats that each used half their time
        chat = active_chat(paid_session, mitra)
        lifecycle.session_end(
            session_id=chat.id, actor=chat.client, now=chat.accepted_at + timedelta(seconds=450)
        )
    active_chat(paid_session, mitra)
    waiting = paid_session(package="curhat-15")
    assert 430 <= eta_over_rest(waiting) <= 450  # half of the running chat's 900 s


def test_it_counts_a_free_bestie_who_does_not_fit_once_the_preference_is_let_go(
    make_client_user, online_mitra
):
    online_mitra(gender="male", capacity=1)
    session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15", gender="female")
    lifecycle.session_mark_paid(session_id=session.id)
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    # the gender wish is let go 60 s into matching (the default relax delays); then he fits
    assert 45 <= eta_over_rest(session) <= 60


def test_it_gives_no_estimate_without_a_present_bestie(paid_session):
    waiting = paid_session()
    assert waiting.status == Status.MATCHING
    body = auth_client(waiting.client).get(f"/api/v1/sessions/{waiting.id}").json()
    assert (body["queue_position"], body["eta_seconds"]) == (1, None)


def test_it_estimates_only_this_one_from_the_requested_bestie_alone(paid_session, online_mitra):
    requested = online_mitra(capacity=1)
    online_mitra(capacity=1)  # free, but the client wants only the requested Bestie
    active_chat(paid_session, requested)
    only = paid_session(mitra=requested, allow_any_mitra=False)
    assert only.status == Status.MATCHING
    assert 880 <= eta_over_rest(only) <= 900


def test_it_gives_only_this_one_no_estimate_once_the_requested_bestie_declined(paid_session, online_mitra):
    requested = online_mitra()
    only = paid_session(mitra=requested, allow_any_mitra=False)
    lifecycle.session_decline(session_id=only.id, mitra=requested)
    only.refresh_from_db()
    assert (only.status, eta_over_rest(only)) == (Status.MATCHING, None)


def test_it_gathers_the_inputs_in_the_same_queries_for_1_and_for_30_waiting(paid_session, online_mitra):
    for _ in range(3):
        active_chat(paid_session, online_mitra(capacity=1))

    def queries_for_queue():
        with CaptureQueriesContext(connection) as captured:
            etas = wait_inputs.waiting_etas(wait_inputs.waiting_sessions())
        return len(captured), etas

    paid_session()
    one, [eta] = queries_for_queue()
    for _ in range(29):
        paid_session()
    thirty, etas = queries_for_queue()
    assert one == thirty
    assert len(etas) == 30 and etas == sorted(etas) and etas[0] <= eta  # time passed: sooner


def test_the_estimator_takes_the_first_of_many_chats_to_end_not_the_earliest_typical_end():
    lengths = SessionLengths(used_fractions=(0.2, 0.4, 0.6, 0.8, 1.0), accept_seconds=(0.0,))
    busy = QueueState(
        lengths=lengths,
        slots={i: [Chat(booked_seconds=1000, elapsed_seconds=0, to_end_seconds=1000)] for i in range(30)},
    )
    [eta] = queue_etas(busy, [Waiting(booked_seconds=1000)])
    assert eta == 200  # one of thirty chats almost surely ends at the shortest recent length
    assert queue_etas(QueueState(lengths=lengths, slots={}), [Waiting(booked_seconds=1000)]) == [None]


def test_it_estimates_a_simulated_evening_well_and_not_as_a_constant():
    """Four evening hours of arrivals (18:00–22:00, Asia/Jakarta profile), Besties on shifts;
    error of the first estimate each waiting session got, against the wait that followed."""
    ours = simulation.measure(simulation.simulate(hours=4, start_hour=18, seed=19))
    pairs = ours["pairs_first"]
    assert ours["waited"] >= 200 and len(pairs) >= 200  # the evening does form a queue
    assert ours["first_estimate"]["median_abs_s"] <= 90
    assert ours["first_estimate"]["p90_abs_s"] <= 300
    assert ours["first_estimate"]["median_rel"] <= 0.35
    estimates = [eta for eta, _ in pairs]
    actuals = [actual for _, actual in pairs]
    assert ours["distinct_first_estimates"] >= 50
    assert statistics.correlation(estimates, actuals) >= 0.6  # it follows the wait
    best_constant = round(statistics.median(actuals))  # known only in hindsight
    constant = simulation.measure(
        simulation.simulate(
            hours=4, start_hour=18, seed=19, estimator=simulation.constant_estimator(best_constant)
        )
    )
    assert ours["first_estimate"]["median_abs_s"] < 0.7 * constant["first_estimate"]["median_abs_s"]
    assert ours["every_estimate"]["p90_abs_s"] < constant["every_estimate"]["p90_abs_s"]


def test_it_gives_no_estimate_for_sessions_that_do_not_wait(paid_session, online_mitra):
    online_mitra()
    offered = paid_session()
    assert (offered.status, eta_over_rest(offered)) == (Status.OFFERED, None)
