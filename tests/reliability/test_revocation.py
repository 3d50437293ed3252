"""Revocation that revokes, through a real server: a deactivation from a one-off process closes
the mitra's sockets at once, a lost close is caught by the socket's periodic re-check, and a
logged-out access token is refused on REST and at socket connect and closes its open socket."""

import subprocess
import sys

import pytest
import requests
from django.conf import settings

from halobestie.accounts.tokens import tokens_for
from mitras.models import Mitra
from tests.realtime.conftest import Socket
from tests.servers import serve_process, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def _deactivate_in_a_one_off_process(mitra, staff, **env):
    """`manage.py shell -c …` as an operator would run it: the process exits right after."""
    code = (
        "from halobestie.accounts.models import User; from mitras.models import Mitra; "
        "from mitras.services import mitra_deactivate; "
        f"mitra_deactivate(mitra=Mitra.objects.get(pk={mitra.pk}), actor=User.objects.get(pk={staff.pk}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=settings.BASE_DIR, env=server_env(**env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_it_closes_a_mitras_sockets_when_deactivated_from_a_one_off_process(
    make_mitra, make_client_user, make_staff, tmp_path
):
    mitra, client = make_mitra(), make_client_user()
    env = server_env(REALTIME_USER_RECHECK_SECONDS="600")  # the close must not wait for a re-check
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        first, second, bystander = Socket(base, mitra.user), Socket(base, mitra.user), Socket(base, client)
        for socket in (first, second, bystander):
            socket.expect_type("hello")
        _deactivate_in_a_one_off_process(mitra, make_staff("admin"))
        for socket in (first, second):
            assert socket.wait_closed(timeout=10) == 4003
            assert [f["code"] for f in socket.pending if f["type"] == "error"] == ["account_deactivated"]
        bystander.send({"type": "ping"})
        assert bystander.expect_type("pong") == {"type": "pong"}
        bystander.close()
    assert Mitra.objects.get(pk=mitra.pk).deactivated_at is not None


def test_it_closes_a_socket_on_its_periodic_recheck_when_the_close_was_lost(make_mitra, make_staff, tmp_path):
    mitra = make_mitra()
    env = server_env(REALTIME_USER_RECHECK_SECONDS="1")
    with (
        serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base),
        Socket(base, mitra.user) as socket,
    ):
        socket.expect_type("hello")
        # A process on another channel-layer prefix: its force-close reaches nobody.
        _deactivate_in_a_one_off_process(mitra, make_staff("admin"), CHANNEL_LAYER_PREFIX="elsewhere")
        assert socket.wait_closed(timeout=15) == 4003
        assert [f["code"] for f in socket.pending if f["type"] == "error"] == ["mitra_deactivated"]


def test_it_refuses_a_logged_out_access_token_on_rest_and_socket(make_client_user, tmp_path):
    user = make_client_user()
    pair, other_login = tokens_for(user), tokens_for(user)
    env = server_env(REALTIME_USER_RECHECK_SECONDS="1")
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        open_socket, other_socket = (
            Socket(base, token=pair["access"]),
            Socket(base, token=other_login["access"]),
        )
        open_socket.expect_type("hello")
        other_socket.expect_type("hello")
        logout = requests.post(f"{base}/api/v1/auth/logout", json={"refresh": pair["refresh"]}, timeout=10)
        assert logout.status_code == 204

        me = requests.get(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {pair['access']}"}, timeout=10
        )
        assert (me.status_code, me.json()["error"]["code"]) == (401, "token_revoked")
        with Socket(base, token=pair["access"]) as refused:
            assert refused.expect_type("error")["code"] == "token_revoked"
            assert refused.wait_closed() == 4001
        assert open_socket.wait_closed(timeout=15) == 4001
        assert [f["code"] for f in open_socket.pending if f["type"] == "error"] == ["token_revoked"]
        # The person's other login keeps working.
        other_socket.send({"type": "ping"})
        assert other_socket.expect_type("pong") == {"type": "pong"}
        other_me = requests.get(
            f"{base}/api/v1/me", headers={"Authorization": f"Bearer {other_login['access']}"}, timeout=10
        )
        assert other_me.status_code == 200
        other_socket.close()
