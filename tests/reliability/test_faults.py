"""Faults injected into running processes: Valkey SIGKILLed under REST traffic and chat, a
public process SIGKILLed mid-chat, the scheduler SIGKILLed while it works through due timers.
(PostgreSQL stopped under traffic: test_postgres_restart.py.)"""

import contextlib
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from websockets.exceptions import ConnectionClosed

from halobestie.accounts.tokens import tokens_for
from sessions_app.models import ChatSession, Message, SessionEvent
from tests.realtime.conftest import Socket, active_session  # noqa: F401 (fixture)
from tests.reliability.conftest import Traffic
from tests.servers import server_env, uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)


def _chat(sender, receiver, session_id, body):
    cmid = sender.send_message(session_id, body)
    ack = sender.expect_type("message.ack", client_msg_id=cmid)
    new = receiver.expect_type("message.new", client_msg_id=cmid)
    assert (new["seq"], new["body"]) == (ack["seq"], body)
    return ack["seq"]


def _reconnect(base_url, user, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket = Socket(base_url, user)
            socket.expect_type("hello", timeout=3)
            return socket
        except (TimeoutError, ConnectionClosed, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _sync(socket, session_id, after_seq):
    seen = {}
    socket.send({"type": "sync", "session_id": str(session_id), "after_seq": after_seq})
    while True:
        frame = socket.expect(lambda f: f["type"] in ("message.new", "sync.done"))
        if frame["type"] == "sync.done":
            return seen
        seen[frame["seq"]] = frame


# Valkey killed ------------------------------------------------------------------------------


def test_it_keeps_rest_answering_while_valkey_is_killed_and_rebuilds_the_mirror(
    active_session,  # noqa: F811
    throwaway_valkey,
    tmp_path,
):
    session, client, mitra = active_session()
    env = server_env(VALKEY_URL=throwaway_valkey.url)
    client_auth = {"Authorization": f"Bearer {tokens_for(client)['access']}"}
    mitra_auth = {"Authorization": f"Bearer {tokens_for(mitra.user)['access']}"}
    paths = [
        ("/api/v1/availability", {}),
        ("/api/v1/mitras", {}),
        (f"/api/v1/mitras/{mitra.id}", {}),
        ("/api/v1/mitra/me", mitra_auth),
        ("/api/v1/sessions", client_auth),
        (f"/api/v1/sessions/{session.id}/messages", client_auth),
    ]
    online_key = f"{settings.VALKEY_KEY_PREFIX}mitras:online"
    valkey = redis.Redis.from_url(throwaway_valkey.url)
    with (
        uvicorn_process("public", env=env, log_path=tmp_path / "a.log") as (_, server_a),
        uvicorn_process("public", env=env, log_path=tmp_path / "b.log") as (_, server_b),
        Traffic(server_a, paths) as traffic,
    ):
        c, m = Socket(server_a, client), Socket(server_b, mitra.user)
        c.expect_type("hello")
        m.expect_type("hello")
        acked = {_chat(c, m, session.id, f"sebelum {n}") for n in range(3)}
        assert valkey.sismember(online_key, mitra.id)

        killed_at = time.monotonic()
        throwaway_valkey.kill()
        # Chat is still stored and acked while Valkey is gone (Postgres is the truth).
        cmid = c.send_message(session.id, "saat valkey mati")
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            acked.add(c.expect_type("message.ack", client_msg_id=cmid, timeout=5)["seq"])
        time.sleep(3)
        throwaway_valkey.start()  # empty, as after a restart without persistence
        back_at = time.monotonic()
        while not valkey.sismember(online_key, mitra.id):
            assert time.monotonic() - back_at < 15, "the mirror was not rebuilt"
            time.sleep(0.05)
        reseeded_after = time.monotonic() - back_at
        time.sleep(1)

        # The sockets were closed (1012) by the layer watchdog: the apps reconnect and sync.
        for socket in (c, m):
            with contextlib.suppress(TimeoutError):
                socket.wait_closed(timeout=20)
        c, m = _reconnect(server_a, client), _reconnect(server_b, mitra.user)
        synced = _sync(m, session.id, 0)
        next_seq = _chat(c, m, session.id, "sudah pulih")
        assert _chat(m, c, session.id, "iya") == next_seq + 1
        c.close()
        m.close()

    during = [a for a in traffic.answers if killed_at <= a.at < back_at]
    print(
        f"\nvalkey kill: {len(traffic.answers)} requests ({len(during)} while down), "
        f"statuses {sorted({a.status for a in traffic.answers})}, mirror rebuilt {reseeded_after:.2f}s "
        f"after Valkey returned, slowest {max(a.seconds for a in traffic.answers):.2f}s"
    )
    assert during
    assert {a.status for a in traffic.answers} == {200}
    assert acked <= set(synced)
    assert reseeded_after < 5


# A public process killed mid-chat -----------------------------------------------------------


def test_it_loses_no_acked_message_when_a_public_process_is_killed_mid_chat(
    active_session,  # noqa: F811
    tmp_path,
):
    session, client, mitra = active_session()
    with uvicorn_process("public", log_path=tmp_path / "b.log") as (_, server_b):
        with uvicorn_process("public", log_path=tmp_path / "a.log") as (process_a, server_a):
            c, m = Socket(server_a, client), Socket(server_b, mitra.user)
            c.expect_type("hello")
            m.expect_type("hello")
            sent, acked = [], {}
            for number in range(10):
                sent.append(c.send_message(session.id, f"pesan {number}"))
                acked[sent[-1]] = c.expect_type("message.ack", client_msg_id=sent[-1])["seq"]
            # Then a burst in flight when the process dies (no drain, no 1012: it just dies).
            with contextlib.suppress(ConnectionClosed, OSError):
                for number in range(10, 40):
                    sent.append(c.send_message(session.id, f"pesan {number}"))
                    time.sleep(0.01)
                    if number == 30:
                        process_a.send_signal(signal.SIGKILL)
            try:
                while len(acked) < len(sent):
                    frame = c.expect_type("message.ack", timeout=5)
                    acked[frame["client_msg_id"]] = frame["seq"]
            except (TimeoutError, ConnectionClosed):
                pass
            process_a.wait(10)
        # The app reconnects to the surviving process and syncs; the mitra syncs too.
        live = {f["seq"] for f in m.pending if f["type"] == "message.new"}
        live |= set(_drain_new(m))
        again = _reconnect(server_b, client)
        client_view = _sync(again, session.id, 0)
        mitra_view = live | set(_sync(m, session.id, max(live, default=0)))
        after = _chat(again, m, session.id, "lanjut")
        again.close()
        m.close()

    stored = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    print(f"\nprocess kill: {len(sent)} sent, {len(acked)} acked before the kill, {len(stored) - 1} stored")
    assert len(acked) >= 10
    assert set(acked.values()) <= set(client_view)
    assert set(acked.values()) <= mitra_view
    assert stored == list(range(1, after + 1))  # no gaps, no duplicates


def _drain_new(socket):
    seqs = []
    try:
        while True:
            frame = socket.expect_type("message.new", timeout=0.5)
            seqs.append(frame["seq"])
    except TimeoutError:
        return seqs


# The scheduler killed mid-run ---------------------------------------------------------------


def test_it_fires_every_timer_exactly_once_when_the_scheduler_is_killed_mid_run(
    settings,
    active_session,  # noqa: F811
    make_client_user,
    make_mitra,
    tmp_path,
):
    from mitras.services import mitra_set_online

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    mitra = make_mitra(capacity=50)
    mitra_set_online(mitra=mitra, is_online=True)
    sessions = [active_session(client=make_client_user(), mitra=mitra)[0] for _ in range(50)]
    # Time passes: every session is past its end (and so past its ending-soon warning).
    ChatSession.objects.filter(pk__in=[s.pk for s in sessions]).update(
        ends_at=timezone.now() - timedelta(seconds=1)
    )
    command = [sys.executable, "manage.py", "run_scheduler", "--interval", "0.1"]

    def start(name):
        return subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=server_env(), stdout=(tmp_path / name).open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def fired():
        return SessionEvent.objects.filter(session__in=sessions, kind__in=["ending_soon", "ended"]).count()

    first = start("scheduler-1.log")
    deadline = time.monotonic() + 30
    while fired() == 0:
        assert time.monotonic() < deadline and first.poll() is None, "the scheduler did no work"
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    at_kill = fired()

    second = start("scheduler-2.log")
    try:
        deadline = time.monotonic() + 60
        while ChatSession.objects.filter(pk__in=[s.pk for s in sessions], status="active").exists():
            assert time.monotonic() < deadline, "timers were lost"
            time.sleep(0.1)
        time.sleep(1.0)  # a few more ticks: nothing may fire twice
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)

    counts = (
        SessionEvent.objects.filter(session__in=sessions, kind__in=["ending_soon", "ended"])
        .values("session_id", "kind")
        .annotate(n=Count("id"))
    )
    print(f"\nscheduler kill: {at_kill} of {2 * len(sessions)} timers had fired when it was killed")
    assert at_kill < 2 * len(sessions)
    assert sorted((row["kind"], row["n"]) for row in counts) == sorted(
        [("ended", 1)] * len(sessions) + [("ending_soon", 1)] * len(sessions)
    )
    assert set(
        ChatSession.objects.filter(pk__in=[s.pk for s in sessions]).values_list("status", flat=True)
    ) == {"ended"}
