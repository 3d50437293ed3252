"""The beacon, public profiles and the mitra's own endpoints over HTTP."""

from django.db import transaction

from mitras import mirror, services
from tests.conftest import auth_client


def _online(mitra):
    services.mitra_set_online(mitra=mitra, is_online=True)


def test_it_counts_online_available_and_busy_besties_in_the_beacon(
    transactional_db, fresh_mirror, make_mitra, loads, api
):
    free, full = make_mitra(capacity=2), make_mitra(capacity=1)
    make_mitra()  # offline: not counted
    _online(free)
    _online(full)
    with transaction.atomic():
        loads[full.id] = 1
        mirror.mirror_capacity_changed(full.id)

    response = api.get("/api/v1/availability")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("online", "available", "busy")} == {"online": 2, "available": 1, "busy": 1}
    assert set(body) == {
        "online",
        "available",
        "busy",
        "available_by_language",
        "available_by_topic",
        "next_available_at",
        "updated_at",
    }


def test_it_serves_the_cached_beacon_without_touching_the_database(
    transactional_db, fresh_mirror, make_mitra, api, django_assert_num_queries
):
    _online(make_mitra())
    first = api.get("/api/v1/availability").content
    assert fresh_mirror.ttl(mirror.snapshot_key()) in (1, 2, 3)

    with django_assert_num_queries(0):
        second = api.get("/api/v1/availability").content

    assert second == first


def test_it_drops_the_cached_beacon_when_availability_changes(
    transactional_db, fresh_mirror, make_mitra, loads, api
):
    mitra = make_mitra(capacity=1)
    assert api.get("/api/v1/availability").json()["online"] == 0
    _online(mitra)
    assert api.get("/api/v1/availability").json()["available"] == 1
    with transaction.atomic():
        loads[mitra.id] = 1
        mirror.mirror_capacity_changed(mitra.id)
    assert api.get("/api/v1/availability").json()["busy"] == 1
    services.mitra_set_online(mitra=mitra, is_online=False)
    assert api.get("/api/v1/availability").json()["online"] == 0


def test_it_lists_public_profiles_with_filters_and_pagination(
    transactional_db, fresh_mirror, make_mitra, loads, api
):
    ayu = make_mitra(display_name="Ayu", topics=["keluarga", "kerja"], languages=["id", "en"], capacity=1)
    raka = make_mitra(display_name="Raka", topics=["kuliah"], languages=["id"])
    sari = make_mitra(display_name="Sari", topics=["keluarga"], languages=["id"])
    gone = make_mitra(display_name="Gone", topics=["keluarga"])
    services.mitra_deactivate(mitra=gone, actor=None)
    _online(ayu)
    _online(sari)
    with transaction.atomic():
        loads[ayu.id] = 1
        mirror.mirror_capacity_changed(ayu.id)

    everyone = api.get("/api/v1/mitras").json()
    assert everyone["count"] == 3
    assert [(m["id"], m["is_online"], m["is_available"]) for m in everyone["results"]] == [
        (ayu.id, True, False),
        (sari.id, True, True),
        (raka.id, False, False),
    ]
    assert everyone["results"][0] == {
        "id": ayu.id,
        "display_name": "Ayu",
        "bio": "",
        "avatar_url": "",
        "topics": ["keluarga", "kerja"],
        "languages": ["id", "en"],
        "gender": "unspecified",
        "rating_average": None,
        "rating_count": 0,
        "is_online": True,
        "is_available": False,
        "working_hours": [],
    }

    def ids(query):
        response = api.get(f"/api/v1/mitras?{query}")
        assert response.status_code == 200
        return [m["id"] for m in response.json()["results"]]

    assert ids("topic=Keluarga") == [ayu.id, sari.id]
    assert ids("language=en") == [ayu.id]
    assert ids("topic=keluarga&available=true") == [sari.id]
    assert ids("available=true") == [sari.id]
    assert ids("topic=tidak-ada") == []
    page = api.get("/api/v1/mitras?limit=1&offset=1").json()
    assert (page["count"], [m["id"] for m in page["results"]]) == (3, [sari.id])
    bad = api.get("/api/v1/mitras?available=mungkin")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "validation_error")


def test_it_shows_one_public_profile_and_hides_deactivated_ones(
    transactional_db, fresh_mirror, make_mitra, api
):
    mitra, gone = make_mitra(display_name="Ayu"), make_mitra()
    services.mitra_deactivate(mitra=gone, actor=None)

    shown = api.get(f"/api/v1/mitras/{mitra.id}")
    hidden = api.get(f"/api/v1/mitras/{gone.id}")
    missing = api.get("/api/v1/mitras/999999")

    assert (shown.status_code, shown.json()["display_name"], shown.json()["is_online"]) == (200, "Ayu", False)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "mitra_not_found")
    assert missing.status_code == 404


def test_it_lets_a_mitra_switch_online_send_heartbeats_and_see_itself(
    transactional_db, fresh_mirror, make_mitra, api
):
    mitra = make_mitra(capacity=2, phone="+6281100000099")
    client = auth_client(mitra.user)

    online = client.post("/api/v1/mitra/status", {"online": True}, format="json")
    heartbeat = client.post("/api/v1/mitra/heartbeat")
    me = client.get("/api/v1/mitra/me")
    offline = client.post("/api/v1/mitra/status", {"online": False}, format="json")

    assert online.status_code == 200
    body = online.json()
    assert {k: body[k] for k in ("is_online", "is_present", "is_available", "load", "capacity")} == {
        "is_online": True,
        "is_present": True,
        "is_available": True,
        "load": 0,
        "capacity": 2,
    }
    assert body["heartbeat_ttl_seconds"] == 30
    assert (heartbeat.status_code, heartbeat.json()) == (200, {"ok": True, "ttl_seconds": 30})
    assert me.status_code == 200
    assert {k: me.json()[k] for k in ("id", "phone", "is_online", "is_present", "load", "capacity")} == {
        "id": mitra.id,
        "phone": "+6281100000099",
        "is_online": True,
        "is_present": True,
        "load": 0,
        "capacity": 2,
    }
    assert (offline.json()["is_online"], offline.json()["is_present"], offline.json()["online_since"]) == (
        False,
        False,
        None,
    )


def test_it_refuses_the_mitra_endpoints_to_clients_and_strangers(make_client_user, api):
    client = auth_client(make_client_user())

    for path in ("/api/v1/mitra/status", "/api/v1/mitra/heartbeat"):
        assert client.post(path, {"online": True}, format="json").status_code == 403
        assert api.post(path, {"online": True}, format="json").status_code == 401
    assert client.get("/api/v1/mitra/me").status_code == 403


def test_it_refuses_a_status_without_a_boolean(make_mitra):
    mitra = make_mitra()

    response = auth_client(mitra.user).post("/api/v1/mitra/status", {"online": "kadang"}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "validation_error")
    mitra.refresh_from_db()
    assert mitra.is_online is False
