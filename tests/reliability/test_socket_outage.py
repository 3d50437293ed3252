"""WebSocket upgrades while Valkey is down: accepted and closed with 1012 (never an HTTP 500),
the outage logged once, not once per socket; sockets work again once Valkey is back."""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sessions_app.models import RealtimeTicket
from sessions_app.tickets import ticket_issue
from tests.realtime.conftest import Socket
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def _close_code_of_a_new_socket(base, user, ticket=None):
    try:
        socket = Socket(base, None if ticket else user, ticket=ticket)
    except InvalidStatus as exc:  # the handshake itself refused (the old HTTP 500)
        return f"http {exc.response.status_code}"
    try:
        return socket.wait_closed(timeout=15)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    finally:
        socket.close()


def test_it_closes_upgrades_with_1012_while_valkey_is_down_and_logs_once(
    make_client_user, throwaway_valkey, tmp_path
):
    user = make_client_user()
    log_path = tmp_path / "public.log"
    env = server_env(VALKEY_URL=throwaway_valkey.url)
    with serve_process("public", env=env, log_path=log_path) as (_, base):
        with Socket(base, user) as before:
            assert before.expect_type("hello")["user_id"] == user.id
        throwaway_valkey.kill()
        ticket, _ = ticket_issue(user=user)
        codes = [_close_code_of_a_new_socket(base, user) for _ in range(6)]
        codes.append(_close_code_of_a_new_socket(base, user, ticket=ticket))
        assert codes == [1012] * 7
        # Refused before authentication: the one-use ticket is still unused.
        assert RealtimeTicket.objects.get().used_at is None

        throwaway_valkey.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                with Socket(base, user) as after:
                    assert after.expect_type("hello", timeout=5)["user_id"] == user.id
                break
            except (ConnectionClosed, TimeoutError):
                assert time.monotonic() < deadline, "sockets did not work again after Valkey came back"
                time.sleep(0.5)

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    outage_lines = [
        line for line in lines if line["msg"].startswith("channel layer unavailable: new sockets")
    ]
    assert len(outage_lines) == 1
    # No traceback per attempt (today's 500 logged "Exception in ASGI application" each time);
    # the few others are one per outage and component (socket registry, config listener, layer).
    assert not [line for line in lines if "Exception in ASGI application" in line["msg"]]
    with_traceback = [line["logger"] for line in lines if "exc" in line]
    assert len(with_traceback) < len(codes)
    assert "sessions_app.consumers" not in with_traceback
    assert not [line for line in lines if line.get("status") == 500]
