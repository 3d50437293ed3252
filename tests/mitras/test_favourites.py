"""Favourites over HTTP, and assignment preferring a client's favourite Bestie (real Postgres)."""

import pytest

from mitras.models import Favourite
from mitras.services import mitra_set_online
from sessions_app import lifecycle
from tests.conftest import auth_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_adds_lists_and_removes_favourites(make_client_user, make_mitra):
    client = make_client_user()
    mitra = make_mitra(display_name="Sari")
    api = auth_client(client)
    added = api.post("/api/v1/favourites", {"mitra": mitra.id, "notify_online": True}, format="json")
    assert added.status_code == 201
    listed = api.get("/api/v1/favourites").json()
    assert [(f["mitra_id"], f["display_name"], f["notify_online"]) for f in listed] == [
        (mitra.id, "Sari", True)
    ]
    assert api.delete(f"/api/v1/favourites/{mitra.id}").status_code == 204
    assert api.get("/api/v1/favourites").json() == []


def test_it_refuses_unknown_bestie_and_missing_favourite_and_changes_nothing(make_client_user, make_mitra):
    client = make_client_user()
    api = auth_client(client)
    unknown = api.post("/api/v1/favourites", {"mitra": 999999}, format="json")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "mitra_not_found")
    missing = api.delete("/api/v1/favourites/999999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "favourite_not_found")
    assert auth_client(make_mitra().user).get("/api/v1/favourites").status_code == 403
    assert Favourite.objects.count() == 0


def test_it_offers_a_favourite_before_a_less_loaded_bestie(make_client_user, make_mitra):
    client = make_client_user()
    favourite = make_mitra()
    mitra_set_online(mitra=favourite, is_online=True)
    occupying = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=occupying.id)  # the favourite now carries one session
    idle = make_mitra()
    mitra_set_online(mitra=idle, is_online=True)
    auth_client(client).post("/api/v1/favourites", {"mitra": favourite.id}, format="json")

    session = lifecycle.session_create(client=client, package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=session.id)
    session.refresh_from_db()
    assert session.mitra_id == favourite.id
    stranger_session = lifecycle.session_create(client=make_client_user(), package_code="curhat-15")
    lifecycle.session_mark_paid(session_id=stranger_session.id)
    stranger_session.refresh_from_db()
    assert stranger_session.mitra_id == idle.id
