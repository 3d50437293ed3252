"""`make run`'s embedded default end to end: SQLite, the in-memory channel layer, the scheduler
inside the public process. Its live events reach the sockets, and concurrent traffic while the
scheduler runs never meets SQLite's write lock as an error."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests

from tests.embedded.conftest import (
    ApiError,
    Socket,
    call,
    client_login,
    embedded_server,
    heartbeats,
    mitra_login,
    pay,
)

DEMO_CLIENT = "+6281200000001"
DEMO_MITRAS = ("+6281100000001", "+6281100000002", "+6281100000003")
DEMO_PASSWORD = "bestie-demo-2026"

# A one-minute package and an ending-soon lead of 55 s: a session on it is "ending soon" 5 s
# after it starts, so the scheduler's ending-soon job fires within a test's time.
FAST_TIMERS = """
from dataclasses import asdict
from halobestie.runtime.schema import DEFAULT_PACKAGES
from halobestie.runtime.services import runtime_config_update
packages = [asdict(p) for p in DEFAULT_PACKAGES]
packages.append({"code": "kilat-1", "name": "Kilat 1 menit", "duration_minutes": 1, "price_idr": 5000})
runtime_config_update(
    values={"packages": packages, "ending_soon_lead_seconds": 55, "offer_timeout_seconds": %d}
)
"""


def _session_frame(socket, frame_type, session_id, timeout):
    return socket.expect(
        lambda f: f.get("type") == frame_type and (f.get("session") or {}).get("id") == session_id,
        timeout,
    )


def test_it_delivers_the_schedulers_offers_queue_positions_and_ending_soon_to_the_sockets(
    tmp_path, migrated_sqlite
):
    # Offers lapse after 10 s, the shortest allowed: the expiry is the scheduler's to handle.
    with embedded_server(tmp_path, migrated_sqlite, setup=FAST_TIMERS % 10) as server:
        client_http = requests.Session()
        client_token = client_login(client_http, server, DEMO_CLIENT)
        client = Socket(server.base_url, token=client_token)
        client.expect_type("hello")
        mitras = []
        for phone in DEMO_MITRAS:
            http = requests.Session()
            token = mitra_login(http, server, phone, DEMO_PASSWORD)
            socket = Socket(server.base_url, token=token)
            socket.expect_type("hello")
            mitras.append((http, token, socket))

        # Nobody online yet: the paid session waits, and the client hears its place from the
        # payment and again from the scheduler's dispatch, every tick.
        body = {"package": "kilat-1"}
        session = call(client_http, "POST", f"{server.api}/sessions", client_token, json=body)
        session_id = session["id"]
        pay(client_http, session["payment"]["invoice_url"])
        for _ in range(3):
            assert client.expect_type("queue.position", timeout=30, session_id=session_id)["position"] == 1

        for http, token, _ in mitras:
            call(http, "POST", f"{server.api}/mitra/status", token, json={"online": True})
        (first_http, first_token, first), (_, _, second), (third_http, third_token, third) = mitras
        with heartbeats(server, [token for _, token, _ in mitras]):
            # The first online gets the offer at once, and declines it.
            assert _session_frame(first, "session.offer", session_id, 30)["session"]["status"] == "offered"
            call(first_http, "POST", f"{server.api}/sessions/{session_id}/decline", first_token)
            # The next gets it and lets it lapse: the scheduler's expiry job takes it back and
            # offers it to the last one, on the scheduler's thread, live on that mitra's socket.
            assert _session_frame(second, "session.offer", session_id, 30)["session"]["status"] == "offered"
            assert _session_frame(third, "session.offer", session_id, 40)["session"]["status"] == "offered"
            accepted = call(third_http, "POST", f"{server.api}/sessions/{session_id}/accept", third_token)
            assert accepted["status"] == "active"

            # The scheduler's ending-soon job, on both sides' sockets.
            for socket in (third, client):
                warning = socket.expect_type("session.ending_soon", timeout=30, session_id=session_id)
                assert datetime.fromisoformat(warning["ends_at"]) == datetime.fromisoformat(
                    accepted["ends_at"]
                )
                assert 0 < warning["seconds_left"] <= 55

        for socket in (client, *(socket for _, _, socket in mitras)):
            socket.close()
        log = server.log()
    assert "scheduler started in process" in log
    assert "database is locked" not in log


WORKERS = 20
MESSAGES = 5
CLIENT_PHONES = [f"+62812300{n:05d}" for n in range(WORKERS)]
MITRA_PHONES = [f"+62811300{n:05d}" for n in range(WORKERS)]
MITRA_PASSWORD = "rahasia-mitra-123"
MANY_MITRAS = f"""
from mitras.services import mitra_create
for number, phone in enumerate({MITRA_PHONES!r}):
    mitra_create(phone=phone, password={MITRA_PASSWORD!r}, display_name=f"Bestie {{number}}", capacity=1)
"""


def test_it_serves_twenty_concurrent_logins_sessions_and_messages_on_sqlite_while_the_scheduler_runs(
    tmp_path, migrated_sqlite
):
    # All traffic comes from 127.0.0.1: the per-IP OTP cap is not what is tested here.
    env = {"OTP_TEST_PHONES": ",".join(CLIENT_PHONES), "OTP_MAX_PER_IP_PER_HOUR": 1000}
    setup = FAST_TIMERS % 120 + MANY_MITRAS
    with embedded_server(tmp_path, migrated_sqlite, setup=setup, **env) as server:
        start = threading.Barrier(WORKERS * 2)
        tokens = []

        def mitra_side(number):
            http = requests.Session()
            start.wait(60)
            token = mitra_login(http, server, MITRA_PHONES[number], MITRA_PASSWORD)
            tokens.append(token)
            socket = Socket(server.base_url, token=token)
            socket.expect_type("hello", timeout=60)
            call(http, "POST", f"{server.api}/mitra/status", token, json={"online": True})
            return http, token, socket

        def client_side(number):
            http = requests.Session()
            start.wait(60)
            token = client_login(http, server, CLIENT_PHONES[number])
            socket = Socket(server.base_url, token=token)
            socket.expect_type("hello", timeout=60)
            session = call(http, "POST", f"{server.api}/sessions", token, json={"package": "curhat-15"})
            pay(http, session["payment"]["invoice_url"])
            return socket, session["id"]

        def accept_offer(mitra):
            http, token, socket = mitra
            offer = socket.expect_type("session.offer", timeout=90)
            session_id = offer["session"]["id"]
            try:
                call(http, "POST", f"{server.api}/sessions/{session_id}/accept", token)
            except ApiError:
                return accept_offer(mitra)  # taken back meanwhile: another offer follows
            return session_id

        def chat(client):
            socket, session_id = client
            seqs = []
            for number in range(MESSAGES):
                cmid = uuid.uuid4().hex
                socket.send(
                    {
                        "type": "message.send",
                        "session_id": session_id,
                        "client_msg_id": cmid,
                        "body": f"pesan {number}",
                    }
                )
                seqs.append(socket.expect_type("message.ack", timeout=60, client_msg_id=cmid)["seq"])
            return seqs

        def read(pair):
            (_, _, socket), session_id = pair
            return [
                socket.expect_type("message.new", timeout=60, session_id=session_id)["seq"]
                for _ in range(MESSAGES)
            ]

        with ThreadPoolExecutor(WORKERS * 2) as pool, heartbeats(server, tokens):
            mitra_futures = [pool.submit(mitra_side, n) for n in range(WORKERS)]
            client_futures = [pool.submit(client_side, n) for n in range(WORKERS)]
            mitras = [future.result(timeout=300) for future in mitra_futures]
            clients = [future.result(timeout=300) for future in client_futures]
            # Capacity 1 each: every mitra serves exactly one of the twenty sessions.
            accepted = list(pool.map(accept_offer, mitras, timeout=300))
            assert sorted(accepted) == sorted(session_id for _, session_id in clients)
            acked = list(pool.map(chat, clients, timeout=300))
            delivered = list(pool.map(read, zip(mitras, accepted, strict=True), timeout=300))

        assert acked == [list(range(1, MESSAGES + 1))] * WORKERS
        assert [sorted(seqs) for seqs in delivered] == [list(range(1, MESSAGES + 1))] * WORKERS
        for socket in [socket for _, _, socket in mitras] + [socket for socket, _ in clients]:
            socket.close()
        log = server.log()
    assert "database is locked" not in log
    assert "database_unavailable" not in log
