"""What the apps' developers and operators read stays true to the code."""

import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_it_keeps_the_committed_openapi_schema_current(tmp_path):
    target = tmp_path / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TESTING": "true"},
    )
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "docs" / "openapi.yaml").read_text()
    assert target.read_text() == committed, "docs/openapi.yaml is stale: run `make openapi`"


def test_it_lists_every_environment_variable_in_env_example():
    names = set()
    for path in ROOT.glob("**/*.py"):
        # The servers' configuration; bench/ is a hand-run tool with its own knobs (docs/PERFORMANCE.md).
        if {".venv", "tests", "bench"} & set(path.parts):
            continue
        text = path.read_text()
        names |= set(re.findall(r'\benv\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', text))
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    ignored = {"DJANGO_SETTINGS_MODULE", "TESTING"}
    assert names - documented - ignored == set()


def generated_schema():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_it_tags_every_operation_by_a_described_area():
    from halobestie.openapi import AREAS

    schema = generated_schema()
    described = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    assert described <= {tag for tag, _description, _prefixes in AREAS}
    for path, method, operation in operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in described, (method, path)
    tag_of = {(path, method): operation["tags"][0] for path, method, operation in operations(schema)}
    assert tag_of[("/api/v1/auth/otp/request", "post")] == "auth"
    assert tag_of[("/api/v1/sessions/{session_id}/accept", "post")] == "sessions"
    assert tag_of[("/api/v1/mitras", "get")] == "mitras"
    assert tag_of[("/api/v1/favourites", "get")] == "favourites"
    assert tag_of[("/webhooks/xendit/invoice", "post")] == "payments"


def test_it_points_try_it_out_at_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://api.example.test"
    assert [server["url"] for server in generated_schema()["servers"]] == ["https://api.example.test"]


def test_it_documents_each_error_status_in_the_envelope_with_retry_after():
    schema = generated_schema()
    responses = schema["components"]["responses"]
    for status in ("400", "401", "403", "404", "409", "429", "503"):
        assert responses[f"Error{status}"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorEnvelope"
        }
    for status in ("429", "503"):
        assert responses[f"Error{status}"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    accept = schema["paths"]["/api/v1/sessions/{session_id}/accept"]["post"]["responses"]
    assert set(accept) == {"200", "400", "401", "403", "404", "409", "429", "503", "default"}
    config = schema["paths"]["/api/v1/config"]["get"]["responses"]
    assert set(config) == {"200", "400", "429", "503", "default"}


def test_it_types_the_payment_of_a_session():
    schema = generated_schema()["components"]["schemas"]
    payment = schema["SessionOut"]["properties"]["payment"]
    assert payment["allOf"] == [{"$ref": "#/components/schemas/SessionPaymentOut"}] and payment["nullable"]
    assert set(schema["SessionPaymentOut"]["required"]) == {
        "id", "kind", "status", "amount_idr", "discount_idr", "invoice_url", "expires_at",
    }  # fmt: skip


def test_it_lets_try_it_out_call_the_public_api_from_the_control_center_only(client, settings):
    settings.CC_ORIGIN = "https://cc.example.test"
    preflight = client.options(
        "/api/v1/me", HTTP_ORIGIN="https://cc.example.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://cc.example.test"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    response = client.get("/api/v1/config", HTTP_ORIGIN="https://cc.example.test")
    assert (response.status_code, response["Access-Control-Allow-Origin"]) == (200, "https://cc.example.test")
    assert "Origin" in response["Vary"]

    other = client.get("/api/v1/config", HTTP_ORIGIN="https://evil.example.test")
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other
    refused = client.options(
        "/api/v1/me", HTTP_ORIGIN="https://evil.example.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in refused
