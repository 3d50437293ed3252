"""The authorization matrix: every endpoint of the public API × every kind of caller → the
status each gets. The table below is the documentation; the test checks every cell against the
running code, and that the table covers every operation in docs/openapi.yaml.

The cast: client A has an active session with mitra X (a message in it, a paid payment, a
device); client B and mitra Y are strangers to it; mitra Z was deactivated after logging in (its
token is still unexpired); staff is a control-center admin holding an API token.

Callers who must be refused run first, and after each refused call the whole state (session,
messages, payments, ratings, reports, profiles, devices) must be unchanged; the owners run last.
"""

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from rest_framework.test import APIClient

from halobestie.accounts.models import Device, User
from halobestie.accounts.tokens import tokens_for
from mitras.models import Mitra
from mitras.services import mitra_deactivate, mitra_set_online
from payments.models import Payment
from sessions_app.models import ChatSession, Message, Rating, Report
from tests.realtime.conftest import active_session  # noqa: F401 (fixture)

ACTORS = ("anonymous", "client_a", "client_b", "mitra_x", "mitra_y", "deactivated", "staff")
# Who may change the state of A's session: they run after everyone else.
OWNERS = ("client_a", "mitra_x")

# (method, path, body) → statuses for ACTORS in that order.
#   anon  A    B    X    Y    deact staff
MATRIX = [
    # Auth endpoints take no access token: every caller gets the same answer for the same body.
    ("POST", "/api/v1/auth/otp/request", {}, (400, 400, 400, 400, 400, 400, 400)),
    ("POST", "/api/v1/auth/otp/verify", {}, (400, 400, 400, 400, 400, 400, 400)),
    ("POST", "/api/v1/auth/mitra/login", {}, (400, 400, 400, 400, 400, 400, 400)),
    ("POST", "/api/v1/auth/token/refresh", {"refresh": "x"}, (401, 401, 401, 401, 401, 401, 401)),
    ("POST", "/api/v1/auth/logout", {"refresh": "x"}, (401, 401, 401, 401, 401, 401, 401)),
    # Public reads: a token is not even looked at.
    ("GET", "/api/v1/config", None, (200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/availability", None, (200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/mitras", None, (200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/mitras/{mitra_x}", None, (200, 200, 200, 200, 200, 200, 200)),
    # Profile and devices: one's own only.
    ("GET", "/api/v1/me", None, (401, 200, 200, 200, 200, 401, 403)),
    ("PATCH", "/api/v1/me", {"display_name": "Diubah"}, (401, 200, 200, 200, 200, 401, 403)),
    ("DELETE", "/api/v1/me", None, (401, 204, 204, 403, 403, 401, 403)),
    ("POST", "/api/v1/devices", {"token": "perangkat-baru"}, (401, 200, 200, 200, 200, 401, 403)),
    ("DELETE", "/api/v1/devices/{device_a}", None, (401, 204, 404, 404, 404, 401, 403)),
    # Mitra self-service.
    ("GET", "/api/v1/mitra/me", None, (401, 403, 403, 200, 200, 401, 403)),
    ("POST", "/api/v1/mitra/status", {"online": True}, (401, 403, 403, 200, 200, 401, 403)),
    ("POST", "/api/v1/mitra/heartbeat", None, (401, 403, 403, 200, 200, 401, 403)),
    ("GET", "/api/v1/mitra/working-hours", None, (401, 403, 403, 200, 200, 401, 403)),
    ("PUT", "/api/v1/mitra/working-hours", {"intervals": []}, (401, 403, 403, 200, 200, 401, 403)),
    ("GET", "/api/v1/mitra/earnings", None, (401, 403, 403, 200, 200, 401, 403)),
    ("POST", "/api/v1/realtime/ticket", None, (401, 201, 201, 201, 201, 401, 403)),
    # Sessions: the role is checked first (403 for the wrong role, the same whether the session
    # exists or not); then a stranger's session does not exist (404). The mitra cannot rate, the
    # client cannot accept; a session still running cannot be rated (409).
    ("GET", "/api/v1/sessions", None, (401, 200, 200, 200, 200, 401, 403)),
    ("POST", "/api/v1/sessions", {"package": "curhat-15"}, (401, 409, 201, 403, 403, 401, 403)),
    ("GET", "/api/v1/sessions/{session}", None, (401, 200, 404, 200, 404, 401, 403)),
    ("GET", "/api/v1/sessions/{session}/messages", None, (401, 200, 404, 200, 404, 401, 403)),
    ("POST", "/api/v1/sessions/{session}/accept", None, (401, 403, 403, 409, 404, 401, 403)),
    ("POST", "/api/v1/sessions/{session}/decline", None, (401, 403, 403, 409, 404, 401, 403)),
    (
        "POST",
        "/api/v1/sessions/{session}/extend",
        {"package": "curhat-15"},
        (401, 201, 404, 403, 403, 401, 403),
    ),
    ("POST", "/api/v1/sessions/{session}/rating", {"score": 5}, (401, 409, 404, 403, 403, 401, 403)),
    (
        "POST",
        "/api/v1/sessions/{session}/report",
        {"reason": "harassment"},
        (401, 201, 404, 201, 404, 401, 403),
    ),
    # Favourites: clients only; an unknown Bestie or one not in the list is 404.
    ("GET", "/api/v1/favourites", None, (401, 200, 200, 403, 403, 401, 403)),
    ("POST", "/api/v1/favourites", {"mitra": 999999999}, (401, 404, 404, 403, 403, 401, 403)),
    ("DELETE", "/api/v1/favourites/{mitra_x}", None, (401, 404, 404, 403, 403, 401, 403)),
    # Booked sessions: slots are public (the package is required: 400); bookings are the client's
    # own (an unknown or a stranger's booking is 404); the Bestie's list and cancel are theirs.
    ("GET", "/api/v1/mitras/{mitra_x}/slots", None, (400, 400, 400, 400, 400, 400, 400)),
    ("GET", "/api/v1/bookings", None, (401, 200, 200, 403, 403, 401, 403)),
    (
        "POST",
        "/api/v1/bookings",
        {"mitra": 999999999, "starts_at": "2030-01-01T10:00:00+07:00", "package": "curhat-15"},
        (401, 404, 404, 403, 403, 401, 403),
    ),
    ("GET", "/api/v1/bookings/{booking}", None, (401, 404, 404, 403, 403, 401, 403)),
    ("POST", "/api/v1/bookings/{booking}/cancel", None, (401, 404, 404, 403, 403, 401, 403)),
    (
        "POST",
        "/api/v1/bookings/{booking}/reschedule",
        {"starts_at": "2030-01-01T10:00:00+07:00"},
        (401, 404, 404, 403, 403, 401, 403),
    ),
    ("POST", "/api/v1/bookings/{booking}/fallback", None, (401, 404, 404, 403, 403, 401, 403)),
    ("GET", "/api/v1/mitra/bookings", None, (401, 403, 403, 200, 200, 401, 403)),
    ("POST", "/api/v1/mitra/bookings/{booking}/cancel", None, (401, 403, 403, 404, 404, 401, 403)),
    # Voucher preview: clients only; an unknown code is unknown to every client alike.
    ("GET", "/api/v1/vouchers/{code}", None, (401, 404, 404, 403, 403, 401, 403)),
    # Blocking and erasing a transcript wait for the end (409); erasing is the client's only.
    ("POST", "/api/v1/sessions/{session}/block", None, (401, 409, 404, 409, 404, 401, 403)),
    ("DELETE", "/api/v1/sessions/{session}/messages", None, (401, 409, 404, 403, 403, 401, 403)),
    # Client A ends it first (owners run in the order A, X), so X finds it ended already.
    ("POST", "/api/v1/sessions/{session}/end", None, (401, 200, 404, 409, 404, 401, 403)),
    # Webhooks: only Xendit's callback token opens them, never a user's token.
    ("POST", "/webhooks/xendit/invoice", {}, (401, 401, 401, 401, 401, 401, 401)),
    ("POST", "/webhooks/xendit/refund", {}, (401, 401, 401, 401, 401, 401, 401)),
]


def test_it_covers_every_operation_of_the_schema():
    schema = yaml.safe_load(Path(settings.BASE_DIR, "docs", "openapi.yaml").read_text())
    documented = {
        (method.upper(), path.replace("{mitra_id}", "{mitra_x}").replace("{session_id}", "{session}")
         .replace("{token}", "{device_a}").replace("{booking_id}", "{booking}"))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "patch", "put", "delete")
    }  # fmt: skip
    assert {(method, path) for method, path, _, _ in MATRIX} == documented


@pytest.fixture
def cast(transactional_db, settings, active_session, make_client_user, make_mitra, make_staff):  # noqa: F811
    # Passwords hashed quickly: the matrix builds its cast once per row.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client_a, client_b = make_client_user(), make_client_user()
    session, _, mitra_x = active_session(client=client_a)
    mitra_y, mitra_z = make_mitra(), make_mitra()
    mitra_set_online(mitra=mitra_y, is_online=True)
    staff = make_staff("admin")
    tokens = {
        "client_a": tokens_for(client_a)["access"],
        "client_b": tokens_for(client_b)["access"],
        "mitra_x": tokens_for(mitra_x.user)["access"],
        "mitra_y": tokens_for(mitra_y.user)["access"],
        "deactivated": tokens_for(mitra_z.user)["access"],
        "staff": tokens_for(staff)["access"],
    }
    mitra_deactivate(mitra=mitra_z, actor=None)
    Device.objects.create(user=client_a, token="perangkat-klien-a", platform="android")
    from sessions_app import chat_store, stored_message

    # The ORM path of chat_store.message_send (same checks, same seq allocation): the async one keeps a
    # psycopg pool per event loop, which a sync test would leak.
    chat_store._store_orm(
        session_id=session.id,
        sender=stored_message.Sender(user_id=client_a.id),
        body="halo, aku butuh teman cerita",
        is_masked=False,
        client_msg_id="matrix-1",
    )
    return {
        "tokens": tokens,
        "values": {
            "session": session.id,
            "mitra_x": mitra_x.id,
            "device_a": "perangkat-klien-a",
            "booking": "6f1d0c1e-0000-4000-8000-000000000000",
            "code": "TIDAKADA?package=curhat-15",  # the preview's query rides along with the code
        },  # fmt: skip
        "session": session,
    }


def _snapshot(session_id):
    """Everything a refused call must leave untouched."""
    session = ChatSession.objects.get(pk=session_id)
    return {
        "session": (session.status, session.ends_at, session.end_reason, session.duration_seconds),
        "messages": list(Message.objects.order_by("id").values_list("id", "body", "seq")),
        "payments": list(Payment.objects.order_by("id").values_list("id", "status", "amount_idr")),
        "ratings": list(Rating.objects.values_list("id", "score")),
        "reports": list(Report.objects.values_list("id", "reason")),
        "users": list(User.objects.order_by("id").values_list("id", "display_name", "phone", "deleted_at")),
        "devices": list(Device.objects.order_by("id").values_list("user_id", "token")),
        "mitras": list(Mitra.objects.order_by("id").values_list("id", "is_online", "deactivated_at")),
        "sessions": ChatSession.objects.count(),
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX]
)
def test_it_answers_each_caller_as_the_matrix_says(cast, method, path, body, expected):
    url = path.format(**cast["values"])
    order = [a for a in ACTORS if a not in OWNERS] + list(OWNERS)
    got = {}
    for actor in order:
        client = APIClient()
        if actor != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast['tokens'][actor]}")
        before = _snapshot(cast["session"].id)
        response = getattr(client, method.lower())(url, body, format="json")
        got[actor] = response.status_code
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, (actor, response.content)
        if response.status_code in (401, 403, 404) and actor not in OWNERS:
            assert _snapshot(cast["session"].id) == before, f"{actor} changed something"
    assert tuple(got[a] for a in ACTORS) == expected, str(tuple(got[a] for a in ACTORS))


def test_it_lists_only_ones_own_sessions_and_profile(cast):
    def get(actor, url):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast['tokens'][actor]}")
        return client.get(url).json()

    session_id = str(cast["session"].id)
    listed = {actor: [s["id"] for s in get(actor, "/api/v1/sessions")["results"]] for actor in ACTORS[1:5]}
    profiles = {actor: get(actor, "/api/v1/me")["id"] for actor in ACTORS[1:5]}

    assert listed == {"client_a": [session_id], "client_b": [], "mitra_x": [session_id], "mitra_y": []}
    assert len(set(profiles.values())) == 4
