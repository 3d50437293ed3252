"""Prometheus metrics: on the internal listener only, with the request counter fed by the
middleware."""

import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from halobestie.accounts.tokens import tokens_for
from tests.realtime.conftest import Socket
from tests.servers import free_port, serve_process, server_env


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


def _duration_count(**labels):
    value = REGISTRY.get_sample_value("halobestie_http_request_duration_seconds_count", labels)
    return value or 0.0


def test_it_times_requests_by_route_pattern_never_by_raw_path(api, active_session):
    session, client, _ = active_session()
    route = "api/v1/sessions/<uuid:session_id>"
    labels = {"listener": "public", "method": "GET", "route": route, "status": "200"}
    before = _duration_count(**labels)
    before_unmatched = _duration_count(listener="public", method="GET", route="<unmatched>", status="404")

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(client)['access']}")
    assert api.get(f"/api/v1/sessions/{session.id}").status_code == 200
    assert api.get(f"/no/such/{session.id}").status_code == 404

    assert _duration_count(**labels) == before + 1
    assert _duration_count(listener="public", method="GET", route="<unmatched>", status="404") == (
        before_unmatched + 1
    )
    routes = {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "halobestie_http_request_duration_seconds"
        for sample in family.samples
    }
    assert not [label for label in routes if str(session.id) in label]


def _scrape(base_url):
    text = requests.get(f"{base_url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_it_counts_stored_messages_and_times_their_delivery_in_the_server_process(
    transactional_db, active_session
):
    session, client, mitra = active_session()
    metrics_port = free_port()
    env = server_env(METRICS_PORT=metrics_port, METRICS_HOST="127.0.0.1")
    with serve_process("public", env=env) as (_, base_url):
        with Socket(base_url, client) as client_socket, Socket(base_url, mitra.user) as mitra_socket:
            client_socket.expect_type("hello")
            mitra_socket.expect_type("hello")
            sent = client_socket.send_message(session.id, "halo, aku mau cerita")
            client_socket.expect_type("message.ack", client_msg_id=sent)
            mitra_socket.expect_type("message.new", client_msg_id=sent)
            # The same client_msg_id again: acked as a duplicate, stored and counted once, and
            # broadcast no second time (issue 15: a resend stays quiet).
            client_socket.send_message(session.id, "halo, aku mau cerita", client_msg_id=sent)
            client_socket.expect_type("message.ack", client_msg_id=sent)
            client_socket.send({"type": "ping"})
            client_socket.expect_type("pong")
        samples = _scrape(f"http://127.0.0.1:{metrics_port}")

    assert samples[("halobestie_chat_messages_total", ())] == 1.0
    # Delivered once to the mitra (the resend is not broadcast); never timed for the sender.
    assert samples[("halobestie_chat_message_delivery_seconds_count", ())] == 1.0
