"""Helpers for the realtime tests: active sessions built through the real services, and a small
synchronous WebSocket client (websockets) that speaks the /ws/v1/ protocol."""

import json
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from halobestie.accounts.tokens import tokens_for
from sessions_app import lifecycle, matching


def _payments_ready():
    """Is the payments app (built in parallel) complete: services, models and its table?"""
    import importlib.util

    from django.db import connection

    if (
        importlib.util.find_spec("payments.services") is None
        or importlib.util.find_spec("payments.models") is None
    ):
        return False
    return "payments_payment" in connection.introspection.table_names()


def _active_without_payments(client, mitra):
    """Until the payments app (built in parallel) lands, session_create/session_mark_paid cannot
    run: the session is stored in the state session_accept leaves it in."""
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.models import ChatSession

    now = timezone.now()
    return ChatSession.objects.create(
        client=client, mitra=mitra, requested_mitra=mitra, allow_any_mitra=False, package_code="curhat-15",
        duration_seconds=900, price_idr=15000, status="active", paid_at=now, matching_started_at=now,
        offered_at=now, accepted_at=now, ends_at=now + timedelta(seconds=900),
    )  # fmt: skip


def end_session(session, actor):
    """session_end, or (until payments lands, see above) the row as session_end leaves it."""
    if _payments_ready():
        lifecycle.session_end(session_id=session.id, actor=actor)
        return
    from django.utils import timezone

    from sessions_app.models import ChatSession

    ChatSession.objects.filter(pk=session.pk).update(
        status="ended", end_reason="client_ended", ended_at=timezone.now()
    )


@pytest.fixture
def active_session(make_client_user, make_mitra):
    """An active session (created, paid, offered to the requested mitra, accepted)."""

    def make(client=None, mitra=None):
        from mitras.services import mitra_set_online

        client = client or make_client_user()
        if mitra is None:
            mitra = make_mitra()
            mitra_set_online(mitra=mitra, is_online=True)
            mitra.refresh_from_db()
        if not _payments_ready():
            return _active_without_payments(client, mitra), client, mitra
        session = lifecycle.session_create(
            client=client, package_code="curhat-15", mitra_id=mitra.id, allow_any_mitra=False
        )
        lifecycle.session_mark_paid(session_id=session.id)
        matching.queue_dispatch()
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        session.refresh_from_db()
        return session, client, mitra

    return make


def ws_url(base_url, ticket=None):
    url = base_url.replace("http://", "ws://") + "/ws/v1/"
    return f"{url}?ticket={ticket}" if ticket else url


class Socket:
    """A protocol client: frames as dicts; frames not yet asked for are kept in order."""

    def __init__(self, base_url, user=None, *, token=None, ticket=None):
        headers = {}
        if user is not None or token is not None:
            headers["Authorization"] = f"Bearer {token or tokens_for(user)['access']}"
        self.ws = connect(
            ws_url(base_url, ticket), additional_headers=headers, open_timeout=10, max_size=None
        ).__enter__()
        self.pending = []

    def send(self, frame):
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def send_message(self, session_id, body, client_msg_id=None):
        client_msg_id = client_msg_id or uuid.uuid4().hex
        self.send(
            {
                "type": "message.send",
                "session_id": str(session_id),
                "client_msg_id": client_msg_id,
                "body": body,
            }
        )
        return client_msg_id

    def recv(self, timeout=10.0):
        if self.pending:
            return self.pending.pop(0)
        return json.loads(self.ws.recv(timeout=timeout))

    def expect(self, predicate, timeout=10.0):
        """The first frame (pending or new) matching predicate; others stay pending in order."""
        for index, frame in enumerate(self.pending):
            if predicate(frame):
                return self.pending.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching frame")
            frame = json.loads(self.ws.recv(timeout=left))
            if predicate(frame):
                return frame
            self.pending.append(frame)

    def expect_type(self, frame_type, timeout=10.0, **fields):
        return self.expect(
            lambda f: f.get("type") == frame_type and all(f.get(k) == v for k, v in fields.items()), timeout
        )

    def wait_closed(self, timeout=15.0):
        """The close code once the server closes (frames until then are kept pending)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.pending.append(json.loads(self.ws.recv(timeout=deadline - time.monotonic())))
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        raise TimeoutError("socket not closed")

    def close(self):
        self.ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def public_server(transactional_db, tmp_path):
    from tests.servers import uvicorn_process

    with uvicorn_process("public", log_path=tmp_path / "public.log") as (process, base_url):
        yield base_url
