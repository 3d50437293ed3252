"""The authorization matrix's rows for the fast routes (halobestie/server/fastpath.py: the beacon,
the config, a session's state and its messages), asked through the public ASGI application, where
those routes are answered before Django: every caller must get the status the matrix gives
through Django, and a refusal in the error envelope."""

import asyncio

import httpx
import pytest

from halobestie.asgi import public_application
from halobestie.db import async_reads
from halobestie.server import fastpath
from tests.realtime.conftest import active_session  # noqa: F401 (fixture)
from tests.reliability.test_authorization_matrix import ACTORS, MATRIX, cast  # noqa: F401 (fixture)

FAST_ROWS = [
    row
    for row in MATRIX
    if row[0] == "GET"
    and row[1]
    in (
        "/api/v1/config",
        "/api/v1/availability",
        "/api/v1/sessions/{session}",
        "/api/v1/sessions/{session}/messages",
    )
]


def test_the_matrix_has_the_fast_routes_rows():
    assert len(FAST_ROWS) == 4


@pytest.mark.parametrize(("method", "path", "body", "expected"), FAST_ROWS, ids=[r[1] for r in FAST_ROWS])
def test_the_fast_routes_answer_each_caller_as_the_matrix_says(cast, method, path, body, expected):  # noqa: F811
    url = path.format(**cast["values"])
    served_before = sum(fastpath.served.values())

    async def main():
        transport = httpx.ASGITransport(app=public_application, client=("192.0.2.44", 42000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                answers = {}
                for actor in ACTORS:
                    headers = (
                        {} if actor == "anonymous" else {"Authorization": f"Bearer {cast['tokens'][actor]}"}
                    )
                    answers[actor] = await client.get(url, headers=headers)
                return answers
        finally:
            await async_reads.close_pools()  # this loop's connections (a fresh loop per row)

    answers = asyncio.run(asyncio.wait_for(main(), timeout=60))

    assert tuple(answers[a].status_code for a in ACTORS) == expected
    for actor, answer in answers.items():
        if answer.status_code >= 400:
            assert set(answer.json()) == {"error"}, (actor, answer.content)
    # The successes were the fast routes' own (not Django's).
    assert sum(fastpath.served.values()) - served_before == sum(1 for s in expected if s == 200)
