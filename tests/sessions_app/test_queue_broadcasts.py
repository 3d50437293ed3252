"""A burst of payments (issue 22): the queue broadcasts and the paid sessions' `session.updated`
are coalesced per process, never lost; the queue estimate is shared and never stale. Real
threads, real Postgres and Valkey (the frames through the real channel layer)."""

import asyncio
import threading

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from sessions_app import lifecycle, wait_inputs
from sessions_app.events import user_group
from sessions_app.models import ChatSession, Status
from sessions_app.wait_estimate import Chat, QueueState, SessionLengths, Waiting, queue_etas

WAITING = 12
THREADS = 4


def pay_at_once(sessions):
    errors = []
    start = threading.Barrier(THREADS)

    def worker(chunk):
        try:
            start.wait()
            for session in chunk:
                lifecycle.session_mark_paid(session_id=session.id)
                connection.close()  # back to the pool, as a request thread does
        except Exception as exc:  # a failure in a thread must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(sessions[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


def frames_until(clients, action, done):
    """Every frame the clients' sockets get while `action` runs and until `done(frames)` holds
    (at most 20 s), in arrival order."""

    async def listen():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for client in clients:
            await layer.group_add(user_group(client.id), channel)
        await sync_to_async(action, thread_sensitive=False)()
        frames = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not done(frames) and loop.time() < deadline:
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), timeout=max(0.1, deadline - loop.time())
                )
            except TimeoutError:
                break
            frames.append(message["frame"])
        return frames

    return async_to_sync(listen)()


def test_it_tells_every_client_of_a_burst_its_latest_place_and_estimate(make_client_user, online_mitra):
    busy = online_mitra(capacity=1)
    first = lifecycle.session_create(client=make_client_user(), package_code="curhat-15", mitra_id=busy.id)
    lifecycle.session_mark_paid(session_id=first.id)
    lifecycle.session_accept(session_id=first.id, mitra=busy)  # the only slot taken: the burst waits
    sessions = [
        lifecycle.session_create(client=make_client_user(), package_code="curhat-15") for _ in range(WAITING)
    ]
    ids = {str(session.id) for session in sessions}

    def final_positions_arrived(frames):
        latest = {}
        for frame in frames:
            if frame["type"] == "queue.position":
                latest[frame["session_id"]] = frame["position"]
        return len(latest) == WAITING and sorted(latest.values()) == list(range(1, WAITING + 1))

    frames = frames_until(
        [s.client for s in sessions], lambda: pay_at_once(sessions), final_positions_arrived
    )

    queue = list(
        ChatSession.objects.filter(status=Status.MATCHING).order_by("matching_started_at", "created_at")
    )
    assert [str(s.id) for s in queue if str(s.id) in ids] == [str(s.id) for s in queue]
    assert len(queue) == WAITING
    expected = {str(s.id): place for place, s in enumerate(queue, start=1)}
    etas = wait_inputs.waiting_etas(queue)
    # The latest queue.position of every client is its place in the committed queue, with the
    # estimate of that queue.
    latest = {}
    for frame in frames:
        if frame["type"] == "queue.position":
            latest[frame["session_id"]] = frame
    assert {sid: frame["position"] for sid, frame in latest.items()} == expected
    assert all(frame["eta_seconds"] is not None and frame["eta_seconds"] > 0 for frame in latest.values())
    assert latest[str(queue[-1].id)]["eta_seconds"] >= latest[str(queue[0].id)]["eta_seconds"]
    assert abs(latest[str(queue[0].id)]["eta_seconds"] - etas[0]) <= 5  # seconds passed since
    # Every paid client heard it is waiting (session.updated, once per payment, with a place
    # and an estimate), and no frame went to a session twice as "offered".
    updated = [frame["session"] for frame in frames if frame["type"] == "session.updated"]
    assert sorted(session["id"] for session in updated) == sorted(ids)
    assert all(session["status"] == "matching" for session in updated)
    assert all(session["queue_position"] >= 1 and session["eta_seconds"] is not None for session in updated)


def test_the_shared_queue_estimate_is_never_older_than_the_call(paid_session, online_mitra):
    busy = online_mitra(capacity=1)
    paid_session(mitra=busy, allow_any_mitra=False)  # offered: the only slot taken
    waiting = paid_session()
    assert [place.session_id for place in wait_inputs.queue_now().places] == [waiting.id]
    later = paid_session()
    # asked after the second payment's commit: the answer includes it (nothing cached)
    assert [place.session_id for place in wait_inputs.queue_now().places] == [waiting.id, later.id]


def test_callers_during_a_run_share_the_next_run_which_starts_after_they_asked():
    started = []
    release = threading.Event()
    entered = threading.Event()

    def compute():
        started.append(len(started) + 1)
        if len(started) == 1:
            entered.set()
            release.wait(10)
        return len(started)

    shared = wait_inputs._SharedFresh(compute)
    results = {}

    def call(name):
        results[name] = shared.get()

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=call, args=(f"later-{n}",)) for n in range(5)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    # the first caller gets run 1; the five that asked while it ran share run 2 (started after
    # they asked), not run 1 and not five runs of their own
    assert results == {"first": 1, **{f"later-{n}": 2 for n in range(5)}}
    assert started == [1, 2]


def test_the_head_of_the_queue_is_estimated_alike_alone_and_within_the_whole_queue():
    lengths = SessionLengths(used_fractions=(0.2, 0.5, 0.9, 1.0, 1.0), accept_seconds=(5.0, 20.0, 40.0))
    state = QueueState(
        lengths=lengths,
        slots={1: [Chat(booked_seconds=900, elapsed_seconds=100, to_end_seconds=800)], 2: [None]},
    )
    queue = [Waiting(booked_seconds=900 + 60 * n, held_for_seconds=float(n % 3) * 30) for n in range(20)]
    whole = queue_etas(state, queue)
    assert [queue_etas(state, queue[: n + 1])[-1] for n in range(20)] == whole
