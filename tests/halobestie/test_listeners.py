"""Both listeners as real uvicorn processes: the admin only on internal, the API only on public."""

import requests

from tests.servers import uvicorn_process


def test_it_splits_the_admin_and_the_api_between_the_listeners(transactional_db):
    with uvicorn_process("public") as (_, public), uvicorn_process("internal") as (_, internal):
        assert requests.get(f"{public}/healthz").status_code == 200
        assert requests.get(f"{public}/readyz").status_code == 200
        assert requests.get(f"{public}/api/v1/config").status_code == 200
        for path in ("/admin/", "/admin/login/", "/api/docs/", "/static/admin/css/base.css"):
            response = requests.get(f"{public}{path}")
            assert response.status_code == 404, path
        not_found = requests.post(f"{public}/api/v1/nope", json={})
        assert not_found.status_code == 404
        assert not_found.json()["error"]["code"] == "not_found"

        assert requests.get(f"{internal}/admin/login/").status_code == 200
        assert requests.get(f"{internal}/static/admin/css/base.css").status_code == 200
        assert requests.get(f"{internal}/api/docs/").status_code == 200
        assert requests.get(f"{internal}/api/v1/config").status_code == 404
