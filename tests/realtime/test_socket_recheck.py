"""The process-wide re-check of open sockets (issue 22): one task per process asks about all its
sockets in one batch (two queries, whatever their number) and closes the refused ones with the
same frames and codes as a refused connect."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from halobestie.accounts.services import user_erase
from halobestie.accounts.tokens import access_revoke, tokens_for
from mitras.models import Mitra
from mitras.services import mitra_deactivate
from sessions_app.tickets import socket_users_recheck
from tests.servers import serve_process, server_env

from .conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


def _jti(access):
    return AccessToken(access)["jti"]


def test_it_rechecks_many_sockets_in_two_queries(
    make_client_user, make_mitra, make_staff, django_assert_num_queries
):
    fine, revoked, erased = make_client_user(), make_client_user(), make_client_user()
    working, deactivated = make_mitra(), make_mitra()
    revoked_jti = _jti(tokens_for(revoked)["access"])
    access_revoke(jti=revoked_jti, expires_at=timezone.now() + timedelta(hours=1))
    user_erase(user=erased)
    mitra_deactivate(mitra=deactivated, actor=make_staff("admin"))
    sockets = [
        (fine.id, _jti(tokens_for(fine)["access"])),
        (revoked.id, revoked_jti),
        (revoked.id, _jti(tokens_for(revoked)["access"])),  # the person's other login
        (erased.id, None),
        (working.user_id, _jti(tokens_for(working.user)["access"])),
        (deactivated.user_id, None),
        (10**9, None),  # an account that is gone
    ]

    with django_assert_num_queries(2):
        refusals = socket_users_recheck(sockets)

    assert [r.code if r else None for r in refusals] == [
        None, "token_revoked", None, "account_deleted", None, "mitra_deactivated", "token_not_valid",
    ]  # fmt: skip


def test_one_recheck_closes_every_refused_socket_of_the_process_and_keeps_the_others(
    make_mitra, make_client_user, tmp_path
):
    first, second, client = make_mitra(), make_mitra(), make_client_user()
    pair = tokens_for(client)
    env = server_env(REALTIME_USER_RECHECK_SECONDS="1")
    with serve_process("public", env=env, log_path=tmp_path / "public.log") as (_, base):
        sockets = [Socket(base, first.user), Socket(base, second.user), Socket(base, token=pair["access"])]
        bystander = Socket(base, client)
        for socket in (*sockets, bystander):
            socket.expect_type("hello")
        # Straight in the database: no force-close goes out, only the re-check can find these.
        Mitra.objects.filter(pk__in=[first.pk, second.pk]).update(deactivated_at=timezone.now())
        access_revoke(jti=_jti(pair["access"]), expires_at=timezone.now() + timedelta(hours=1))
        assert [socket.wait_closed(timeout=15) for socket in sockets] == [4003, 4003, 4001]
        assert [[f["code"] for f in s.pending if f["type"] == "error"] for s in sockets] == [
            ["mitra_deactivated"], ["mitra_deactivated"], ["token_revoked"],
        ]  # fmt: skip
        bystander.send({"type": "ping"})
        assert bystander.expect_type("pong") == {"type": "pong"}
        bystander.close()
