"""Chat over /ws/v1/ on a real server process: delivery, acks, idempotent resends, sync, typing,
read receipts, who may send."""

import pytest

from sessions_app.models import ChatSession, Message
from tests.realtime.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_delivers_messages_both_ways_with_acks_and_seq(public_server, active_session):
    session, client, mitra = active_session()
    with Socket(public_server, client) as c, Socket(public_server, mitra.user) as m:
        c.expect_type("hello")
        m.expect_type("hello")
        cmid = c.send_message(session.id, "halo kak")
        ack = c.expect_type("message.ack", client_msg_id=cmid)
        assert ack["seq"] == 1 and ack["session_id"] == str(session.id)
        new = m.expect_type("message.new", client_msg_id=cmid)
        assert (new["seq"], new["body"], new["sender_id"], new["kind"], new["is_masked"]) == (
            1,
            "halo kak",
            client.id,
            "text",
            False,
        )
        assert new["id"] == ack["id"]
        reply = m.send_message(session.id, "halo juga")
        assert m.expect_type("message.ack", client_msg_id=reply)["seq"] == 2
        assert c.expect_type("message.new", client_msg_id=reply)["body"] == "halo juga"
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "body")) == [
        (1, "halo kak"),
        (2, "halo juga"),
    ]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2
