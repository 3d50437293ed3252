"""The crisis flag is never lost: it is stored with the message, before the ack. A server killed
right after the ack leaves the flag behind, and the scheduler does the follow-up it missed."""

import pytest

from halobestie import scheduler as halobestie_scheduler
from halobestie.runtime.selectors import get_config
from sessions_app.models import ChatSession, Message
from tests.realtime.conftest import Socket
from tests.servers import uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_keeps_the_flag_when_the_server_is_killed_right_after_the_ack(active_session, tmp_path):
    session, client, mitra = active_session()
    with uvicorn_process("public", log_path=tmp_path / "public.log") as (process, base_url):
        socket = Socket(base_url, client)
        socket.expect_type("hello")
        cmid = socket.send_message(session.id, "udah ga pengen hidup lagi kak")
        ack = socket.expect_type("message.ack", client_msg_id=cmid)
        process.kill()  # SIGKILL: no drain, no background task finishes after this
        process.wait(10)
        socket.close()
    stored = ChatSession.objects.get(pk=session.pk)
    assert (stored.is_flagged, stored.needs_staff_attention) == (True, True)
    assert list(stored.events.filter(kind="crisis_flagged").values_list("data", flat=True)) == [
        {"message_id": ack["id"], "source": "client"}
    ]

    # Whatever the dead process did not get to, the next scheduler tick does, once.
    halobestie_scheduler.run_tick()
    halobestie_scheduler.run_tick()
    stored.refresh_from_db()
    assert (stored.crisis_followup_pending, stored.crisis_extension_seconds, stored.extended_seconds) == (
        False, 600, 600,
    )  # fmt: skip
    hotline = list(Message.objects.filter(session=session, kind="system").values_list("seq", "body"))
    assert hotline == [(2, get_config().hotline_text)]
