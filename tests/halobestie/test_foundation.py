"""The project's skeleton: two listeners, the error envelope, real backing services."""

from django.conf import settings
from django.db import connection


def test_it_runs_on_real_postgres_and_redis(valkey):
    assert connection.vendor == "postgresql"
    assert valkey.ping() is True
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "sessions_app.layer.UserGroupLayer"


def test_it_answers_healthz_and_readyz(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_it_hides_the_admin_on_the_public_listener(api):
    for path in ("/admin/", "/admin/login/", "/admin/accounts/user/", "/api/docs/", "/api/schema/"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_it_serves_the_admin_on_the_internal_listener(internal_client):
    response = internal_client.get("/admin/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content
    assert internal_client.get("/healthz").status_code == 200


def test_it_keeps_the_api_off_the_internal_listener(internal_client):
    assert internal_client.get("/api/v1/config").status_code == 404


def test_it_answers_unknown_paths_in_the_envelope(api):
    response = api.post("/api/v1/nope", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "detail": "Tidak ditemukan."}}


def test_it_answers_wrong_methods_in_the_envelope(api):
    response = api.delete("/api/v1/config")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_it_serves_the_public_config(api):
    body = api.get("/api/v1/config").json()
    assert [p["code"] for p in body["packages"]] == ["curhat-15", "curhat-30", "curhat-60"]
    assert body["packages"][1] == {
        "code": "curhat-30",
        "name": "Curhat 30 menit",
        "duration_minutes": 30,
        "price_idr": 25000,
    }
    assert "mitra_share_percent" not in body
