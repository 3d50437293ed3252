"""Dispatch in bulk (issue 22): one dispatch offers many waiting sessions in a few statements, the
offers' frames go out together after commit, a payment while every Bestie is full waits without a
round and is offered when a slot frees, and the per-process coalescing never loses a request.
Real Postgres and Valkey, real threads, the frames through the real channel layer."""

import threading
import time
from collections import Counter

from django.db import transaction

from halobestie.runtime.selectors import get_config
from mitras import mirror
from sessions_app import lifecycle, matching
from sessions_app.models import ChatSession, SessionEvent, SessionOffer, Status
from tests.sessions_app.test_queue_broadcasts import frames_until


def test_one_dispatch_offers_every_free_slot_first_in_first_out_with_its_rows_and_frames(
    make_client_user, online_mitra
):
    mitras = [online_mitra(capacity=2) for _ in range(3)]  # 6 slots
    sessions = [
        lifecycle.session_create(client=make_client_user(), package_code="curhat-15") for _ in range(8)
    ]

    def pay_all_at_once():
        with transaction.atomic():  # one commit: the dispatch after it finds 8 waiting, 6 slots
            for session in sessions:
                lifecycle.session_mark_paid(session_id=session.id)

    users = [s.client for s in sessions] + [m.user for m in mitras]

    def offers_told(frames):
        told = Counter(
            f["type"] for f in frames if f.get("session", {}).get("status") == "offered"
        )  # fmt: skip
        return told["session.offer"] >= 6 and told["session.updated"] >= 6

    frames = frames_until(users, pay_all_at_once, offers_told)

    offered = list(ChatSession.objects.filter(status=Status.OFFERED).order_by("matching_started_at"))
    assert [s.id for s in offered] == [s.id for s in sessions[:6]]  # first in, first out
    assert len({s.offered_at for s in offered}) == 1  # placed together, by one dispatch
    timeout = get_config().offer_timeout_seconds
    assert all((s.offer_expires_at - s.offered_at).total_seconds() == timeout for s in offered)
    offers = list(SessionOffer.objects.order_by("session__matching_started_at"))
    assert [(o.session_id, o.mitra_id, o.offered_at, o.expires_at, o.outcome) for o in offers] == [
        (s.id, s.mitra_id, s.offered_at, s.offer_expires_at, "pending") for s in offered
    ]
    events = SessionEvent.objects.filter(kind="offered")
    assert sorted((e.session_id, e.data["mitra_id"]) for e in events) == sorted(
        (s.id, s.mitra_id) for s in offered
    )
    assert Counter(s.mitra_id for s in offered) == {m.id: 2 for m in mitras}
    for mitra in mitras:
        mitra.refresh_from_db()
        assert mitra.load == 2
        assert mitra.last_assigned_at == offered[0].offered_at
    _, mirrored = mirror.read_live([m.id for m in mitras])
    assert mirrored == {m.id: 2 for m in mitras}

    # Each Bestie was offered her two sessions, each offered client heard it is offered.
    mitra_of = {str(s.id): s.mitra_id for s in offered}
    offer_frames = [f["session"] for f in frames if f["type"] == "session.offer"]
    assert sorted(f["id"] for f in offer_frames) == sorted(mitra_of)
    assert all(f["status"] == "offered" and f["mitra"]["id"] == mitra_of[f["id"]] for f in offer_frames)
    updated = {f["session"]["id"]: f["session"] for f in frames if f["type"] == "session.updated"}
    for session in offered:
        assert updated[str(session.id)]["status"] == "offered"


def test_a_payment_while_every_bestie_is_full_waits_and_is_offered_when_a_slot_frees(
    make_client_user, online_mitra
):
    bestie = online_mitra(capacity=1)
    first = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=first.id)
    second = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")

    def heard_waiting(frames):
        return {"session.updated", "queue.position"} <= {f["type"] for f in frames}

    frames = frames_until(
        [second.client], lambda: lifecycle.session_mark_paid(session_id=second.id), heard_waiting
    )
    second.refresh_from_db()
    assert second.status == Status.MATCHING  # no free slot: it waits
    update = next(f["session"] for f in frames if f["type"] == "session.updated")
    assert (update["status"], update["queue_position"]) == ("matching", 1)
    position = next(f for f in frames if f["type"] == "queue.position")
    assert (position["session_id"], position["position"]) == (str(second.id), 1)

    lifecycle.session_decline(session_id=first.id, mitra=bestie)  # the slot frees: the queue moves
    second.refresh_from_db()
    first.refresh_from_db()
    assert (second.status, second.mitra_id) == (Status.OFFERED, bestie.id)
    assert first.status == Status.MATCHING  # she declined it: not offered to her again
    bestie.refresh_from_db()
    assert bestie.load == 1


def test_a_request_while_a_run_goes_on_gets_one_more_run_that_starts_after_it():
    started = []
    entered = threading.Event()
    release = threading.Event()

    def job():
        started.append(time.monotonic())
        if len(started) == 1:
            entered.set()
            release.wait(10)

    coalesced = matching._Coalesced(job)
    first = threading.Thread(target=coalesced)
    first.start()
    assert entered.wait(10)
    asked = []
    for _ in range(5):  # five requests during the first run: they return at once
        asked.append(time.monotonic())
        coalesced()
    release.set()
    first.join(10)
    assert len(started) == 2  # one more run for the five, not five
    assert started[1] > max(asked)  # and it started after the last of them asked


def test_spaced_runs_stretch_with_their_cost_and_never_drop_a_request():
    runs = []

    def job():
        runs.append(time.monotonic())
        time.sleep(0.02)  # a run of 20 ms

    spaced = matching._Spaced(job, spacing=0.01, share=0.1, longest=0.15)
    asked = []
    for _ in range(20):
        asked.append(time.monotonic())
        spaced()
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while (not runs or runs[-1] < asked[-1]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runs[-1] > asked[-1]  # the last request was served by a run that started after it
    assert len(runs) < len(asked)  # stretched: 20 ms runs at a tenth of the time → ≥ 0.15 s apart
    assert all(later - earlier >= 0.14 for earlier, later in zip(runs, runs[1:], strict=False))
