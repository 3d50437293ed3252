"""Limits per person, not per socket, through a real server: a cap on a user's open sockets, one
message bucket per user across sockets, and per-person REST throttles (429 in the envelope with
Retry-After) on endpoints without a limit of their own."""

import time

import pytest
import requests

from halobestie.accounts.tokens import tokens_for
from sessions_app.models import Message, RealtimeTicket
from tests.realtime.conftest import (
    Socket,
    active_session,  # noqa: F401 (fixture)
)
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_caps_the_sockets_of_one_user(make_client_user, tmp_path, valkey):
    user, other = make_client_user(), make_client_user()
    env = server_env(REALTIME_MAX_SOCKETS_PER_USER="3")
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        sockets = [Socket(base, user) for _ in range(3)]
        for socket in sockets:
            socket.expect_type("hello")
        others = [Socket(base, other) for _ in range(3)]
        for socket in others:
            socket.expect_type("hello")
        with Socket(base, user) as extra:
            error = extra.expect_type("error")
            assert (error["code"], extra.wait_closed()) == ("too_many_sockets", 4029)
        # Nothing changed for the sockets already open, the user's or anyone else's.
        for socket in sockets + others:
            socket.send({"type": "ping"})
            assert socket.expect_type("pong") == {"type": "pong"}
        sockets.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the closed socket leaves the registry when its server side has run
            with Socket(base, user) as again:
                frame = again.expect(lambda f: f["type"] in ("hello", "error"))
                if frame["type"] == "hello":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for socket in sockets + others:
            socket.close()


def test_it_shares_one_message_bucket_among_a_users_sockets(active_session, tmp_path, valkey):  # noqa: F811
    session, client, mitra = active_session()
    env = server_env(REALTIME_MESSAGES_PER_SECOND="0.01", REALTIME_MESSAGES_BURST="4")
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        first, second = Socket(base, client), Socket(base, client)
        first.expect_type("hello")
        second.expect_type("hello")
        outcomes = []
        for n in range(8):
            socket = (first, second)[n % 2]
            cmid = socket.send_message(session.id, f"pesan {n}")
            frame = socket.expect(
                lambda f, cmid=cmid: f.get("client_msg_id") == cmid or f.get("ref") == cmid, timeout=10
            )
            outcomes.append(frame["type"] if frame["type"] == "message.ack" else frame["code"])
        first.close()
        second.close()
    # Per socket each would have had 4; per user it is 4 together.
    assert outcomes == ["message.ack"] * 4 + ["rate_limited"] * 4
    assert Message.objects.filter(session=session).count() == 4


def _fresh_window():
    """Start at the beginning of a one-minute throttle window, so the test never straddles two."""
    if 60 - time.time() % 60 < 15:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_it_throttles_each_person_with_429_and_retry_after(make_client_user, tmp_path, valkey):
    user, other = make_client_user(), make_client_user()
    env = server_env(API_THROTTLE_WRITES_PER_MINUTE="3", API_THROTTLE_READS_PER_MINUTE="4")
    auth = {"Authorization": f"Bearer {tokens_for(user)['access']}"}
    other_auth = {"Authorization": f"Bearer {tokens_for(other)['access']}"}
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        _fresh_window()
        statuses = [requests.post(f"{base}/api/v1/realtime/ticket", headers=auth, timeout=10).status_code]
        statuses += [
            requests.patch(
                f"{base}/api/v1/me", json={"display_name": "Baru"}, headers=auth, timeout=10
            ).status_code,
            requests.post(f"{base}/api/v1/realtime/ticket", headers=auth, timeout=10).status_code,
        ]
        refused = requests.post(f"{base}/api/v1/realtime/ticket", headers=auth, timeout=10)
        refused_patch = requests.patch(
            f"{base}/api/v1/me", json={"display_name": "Lagi"}, headers=auth, timeout=10
        )
        assert statuses == [201, 200, 201] or statuses == [200, 200, 200], statuses
        for answer in (refused, refused_patch):
            assert answer.status_code == 429
            assert answer.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(answer.headers["Retry-After"]) <= 61
        # Reads have their own budget; another person has their own.
        reads = [requests.get(f"{base}/api/v1/me", headers=auth, timeout=10).status_code for _ in range(5)]
        assert reads == [200] * 4 + [429]
        assert requests.post(f"{base}/api/v1/realtime/ticket", headers=other_auth, timeout=10).ok
        # Without a token: per client address.
        anonymous = [requests.get(f"{base}/api/v1/mitras", timeout=10).status_code for _ in range(5)]
        assert anonymous == [200] * 4 + [429]
    assert RealtimeTicket.objects.filter(user=user).count() == 2
    user.refresh_from_db()
    assert user.display_name == "Baru"
