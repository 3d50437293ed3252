"""Four concurrent mitra logins are not serialised on the process's shared thread (issue 22):
each login's password check waits at a barrier of four, so the logins can only succeed when all
four checks are running at the same time (serialised, the first would wait alone and fail)."""

import asyncio
import threading
import time

import httpx
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from halobestie.asgi import public_application

_barrier = threading.Barrier(4, timeout=15)
_calls = []


class BarrierHasher(PBKDF2PasswordHasher):
    """PBKDF2 with few iterations whose check records (thread, start, end) and waits for the
    other three checks: the test's edge, configured through PASSWORD_HASHERS."""

    algorithm = "barrier_pbkdf2"
    iterations = 1000

    def verify(self, password, encoded):
        started = time.monotonic()
        _barrier.wait()
        result = super().verify(password, encoded)
        _calls.append((threading.current_thread().name, started, time.monotonic()))
        return result


HASHER = f"{__name__}.BarrierHasher"


def test_four_concurrent_logins_run_their_password_checks_at_the_same_time(
    transactional_db, make_mitra, settings
):
    settings.PASSWORD_HASHERS = [HASHER]
    mitras = [make_mitra(phone=f"+628119900000{n}", password=f"rahasia-mitra-{n}") for n in range(4)]
    _calls.clear()
    _barrier.reset()

    async def main():
        transport = httpx.ASGITransport(app=public_application, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(
                        client.post(
                            "/api/v1/auth/mitra/login",
                            json={"phone": m.user.phone, "password": f"rahasia-mitra-{n}"},
                        )
                        for n, m in enumerate(mitras)
                    )
                ),
                timeout=60,
            )

    answers = asyncio.run(main())

    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json()["access"] for a in answers)
    assert len(_calls) == 4
    assert len({name for name, _, _ in _calls}) == 4  # four threads
    assert all(name.startswith("cpu-view") for name, _, _ in _calls)
    # Every check started before any ended: they overlapped.
    assert max(start for _, start, _ in _calls) < min(end for _, _, end in _calls)
