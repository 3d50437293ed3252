"""Prometheus metrics: on the internal listener only, with the request counter fed by the
middleware."""

from prometheus_client import REGISTRY


def _requests(listener, status_class):
    value = REGISTRY.get_sample_value(
        "halobestie_http_requests_total",
        {"listener": listener, "method": "GET", "status_class": status_class},
    )
    return value or 0.0


def test_it_serves_metrics_on_the_internal_listener_only(api, internal_client):
    before_ok, before_missing = _requests("public", "2xx"), _requests("public", "4xx")
    assert api.get("/healthz").status_code == 200
    assert api.get("/metrics").status_code == 404
    assert (_requests("public", "2xx"), _requests("public", "4xx")) == (before_ok + 1, before_missing + 1)

    response = internal_client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    for name in (
        "halobestie_http_requests_total",
        "halobestie_websockets_open",
        "halobestie_chat_messages_total",
        "halobestie_session_assignments_total",
        "halobestie_payments_total",
        "halobestie_valkey_fallbacks_total",
        "halobestie_mirror_reseeds_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
