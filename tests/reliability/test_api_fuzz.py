"""Schemathesis against the committed schema (docs/openapi.yaml), on a real server process, for
every public operation, as anonymous, a client and a mitra (one run each, with that caller's
token): never a 5xx, and every answer conforms to the schema (status documented, body and
content type as documented). The webhooks are documented loosely (Xendit's payload is
Xendit's), so they are held to "no 5xx" only. `make test` runs a bounded number of examples per
operation; `make soak` runs many more.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from halobestie.accounts.tokens import tokens_for
from tests.accounts.conftest import GATEWAY_KEY, MERCHANT_KEY, FakeFazpass
from tests.realtime.conftest import active_session  # noqa: F401 (fixture)
from tests.servers import server_env, uvicorn_process

SCHEMA = Path(settings.BASE_DIR, "docs", "openapi.yaml")
CONFORMANCE = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
)


def _schemathesis(
    base_url, *, headers, examples, report, include=(), exclude=(), exclude_operations=(), checks=CONFORMANCE
):
    command = [
        str(Path(sys.executable).with_name("st")), "run", str(SCHEMA), "--url", base_url,
        "--checks", checks, "--max-examples", str(examples), "--seed", "12",
        "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "10",
        "--generation-database", "none", "--no-color", "--suppress-health-check", "all",
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    for pattern in include:
        command += ["--include-path-regex", pattern]
    for pattern in exclude:
        command += ["--exclude-path-regex", pattern]
    for operation_id in exclude_operations:
        command += ["--exclude-operation-id", operation_id]
    # Run in the report folder: schemathesis keeps state in .schemathesis/ under its cwd.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=report.parent)
    report.write_text(result.stdout + result.stderr)
    return result


@pytest.fixture
def fuzz_server(transactional_db, tmp_path, active_session):  # noqa: F811
    session, client, mitra = active_session()
    fazpass = FakeFazpass()  # OTP as in production: through our real client to a fake Fazpass
    env = server_env(
        FAZPASS_ENABLED="true",
        FAZPASS_BASE_URL=fazpass.base_url,
        FAZPASS_MERCHANT_KEY=MERCHANT_KEY,
        FAZPASS_GATEWAY_KEY=GATEWAY_KEY,
        # The fuzzer sends thousands of requests from one address: the abuse limits would turn
        # most of them into 429s (test_abuse.py covers those).
        OTP_MAX_PER_IP_PER_HOUR="100000",
        MITRA_LOGIN_MAX_FAILURES_PER_IP="100000",
        MITRA_LOGIN_MAX_FAILURES_PER_PHONE="100000",
    )
    with uvicorn_process("public", env=env, log_path=tmp_path / "public.log") as (_, base_url):
        yield (
            base_url,
            {
                "anonymous": {},
                "client": {"Authorization": f"Bearer {tokens_for(client)['access']}"},
                "mitra": {"Authorization": f"Bearer {tokens_for(mitra.user)['access']}"},
            },
        )
    fazpass.stop()


def _run_all(fuzz_server, tmp_path, examples):
    base_url, callers = fuzz_server
    failures = {}
    for caller, headers in callers.items():
        for part, kwargs in {
            # DELETE /me would erase the caller and turn the rest of its run into 401s: it is
            # fuzzed anonymously only (erasure has its own tests in tests/accounts).
            "api": {"exclude": ["^/webhooks/"], "exclude_operations": [] if not headers else ["me_delete"]},
            "webhooks": {"include": ["^/webhooks/"], "checks": "not_a_server_error"},
        }.items():
            report = tmp_path / f"{caller}-{part}.txt"
            result = _schemathesis(base_url, headers=headers, examples=examples, report=report, **kwargs)
            if result.returncode != 0:
                failures[f"{caller} {part}"] = report.read_text()[-6000:]
    assert not failures, "\n\n".join(f"== {name}\n{text}" for name, text in failures.items())


def test_it_never_answers_5xx_and_conforms_to_the_schema(fuzz_server, tmp_path):
    _run_all(fuzz_server, tmp_path, examples=8)


@pytest.mark.soak
def test_it_never_answers_5xx_and_conforms_to_the_schema_in_a_long_run(fuzz_server, tmp_path):
    _run_all(fuzz_server, tmp_path, examples=200)
