"""A runtime-config save in one process is in effect in another within a second (pub/sub)."""

import time

import requests
from django.core.management import call_command

from halobestie.runtime.models import RuntimeConfig
from halobestie.runtime.services import runtime_config_update
from tests.servers import server_env, uvicorn_process


def test_it_reaches_another_process_within_a_second(transactional_db):
    call_command("seed")
    # A long cache lifetime in the server: only the pub/sub invalidation can make it fresh.
    with uvicorn_process("public", env=server_env(RUNTIME_CONFIG_CACHE_SECONDS=300)) as (_, base):
        assert requests.get(f"{base}/api/v1/config").json()["offer_timeout_seconds"] == 60
        time.sleep(0.5)  # the server's listener subscribes at start-up
        values = {**RuntimeConfig.objects.get().values, "offer_timeout_seconds": 45}
        runtime_config_update(values=values)
        saved_at = time.monotonic()
        seen = None
        while time.monotonic() - saved_at < 1.0:
            seen = requests.get(f"{base}/api/v1/config").json()["offer_timeout_seconds"]
            if seen == 45:
                break
            time.sleep(0.05)
        assert seen == 45


def test_it_carries_a_rollback_to_another_process_like_a_save(transactional_db):
    from halobestie.runtime.services import runtime_config_rollback

    call_command("seed")
    first = RuntimeConfig.objects.get()
    runtime_config_update(values={**first.values, "offer_timeout_seconds": 45})
    with uvicorn_process("public", env=server_env(RUNTIME_CONFIG_CACHE_SECONDS=300)) as (_, base):
        assert requests.get(f"{base}/api/v1/config").json()["offer_timeout_seconds"] == 45
        time.sleep(0.5)  # the server's listener subscribes at start-up
        runtime_config_rollback(version=first.version, actor=None)
        rolled_at = time.monotonic()
        seen = None
        while time.monotonic() - rolled_at < 1.0:
            seen = requests.get(f"{base}/api/v1/config").json()["offer_timeout_seconds"]
            if seen == 60:
                break
            time.sleep(0.05)
        assert seen == 60
