"""Blocking after a session: either side, through the REST endpoint; assignment never matches the
pair again (real PostgreSQL, the real dispatcher)."""

import pytest

from halobestie.errors import Conflict
from sessions_app import blocking, lifecycle, matching
from sessions_app.models import Block, ChatSession, SessionEvent, SessionOffer, Status
from tests.conftest import auth_client


def _ended_session(paid_session, online_mitra, client=None):
    mitra = online_mitra()
    session = paid_session(client=client, mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    lifecycle.session_end(session_id=session.id, actor=session.client)
    return ChatSession.objects.get(pk=session.id), mitra


def test_it_lets_the_client_block_the_bestie_after_the_session(paid_session, online_mitra):
    session, mitra = _ended_session(paid_session, online_mitra)
    response = auth_client(session.client).post(f"/api/v1/sessions/{session.id}/block")
    assert response.status_code == 201
    assert (response.json()["blocked_by"], response.json()["session_id"]) == ("client", str(session.id))
    assert list(Block.objects.values_list("client_id", "mitra_id", "blocked_by")) == [
        (session.client_id, mitra.id, "client")
    ]
    # Again, or from the other side: the pair stays blocked once.
    assert auth_client(session.client).post(f"/api/v1/sessions/{session.id}/block").status_code == 200
    assert auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/block").status_code == 200
    assert Block.objects.count() == 1
    assert SessionEvent.objects.filter(session=session, kind="blocked").count() == 1


def test_it_lets_the_bestie_block_the_client(paid_session, online_mitra):
    session, mitra = _ended_session(paid_session, online_mitra)
    response = auth_client(mitra.user).post(f"/api/v1/sessions/{session.id}/block")
    assert response.status_code == 201 and response.json()["blocked_by"] == "mitra"


def test_it_refuses_to_block_before_the_end_and_for_strangers(paid_session, online_mitra, make_client_user):
    mitra = online_mitra()
    session = paid_session(mitra=mitra, allow_any_mitra=False)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    response = auth_client(session.client).post(f"/api/v1/sessions/{session.id}/block")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "session_not_ended")
    response = auth_client(make_client_user()).post(f"/api/v1/sessions/{session.id}/block")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "session_not_found")
    assert Block.objects.count() == 0


def test_it_never_offers_a_blocked_pair_again(paid_session, online_mitra):
    session, blocked_mitra = _ended_session(paid_session, online_mitra)
    client = session.client
    blocking.block_after_session(session_id=session.id, user=blocked_mitra.user)
    # The blocked Bestie is the only one free, and the least loaded: still never offered.
    waiting = paid_session(client=client)
    assert matching.queue_dispatch() == []
    waiting.refresh_from_db()
    assert (waiting.status, waiting.mitra_id) == (Status.MATCHING, None)
    assert not SessionOffer.objects.filter(session=waiting).exists()
    # Another client is matched with that Bestie at once; a new Bestie takes the blocked client.
    other = paid_session()
    other.refresh_from_db()
    assert (other.status, other.mitra_id) == (Status.OFFERED, blocked_mitra.id)
    fresh = online_mitra()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.mitra_id) == (Status.OFFERED, fresh.id)


def test_it_answers_a_request_for_a_blocked_bestie_as_not_found(paid_session, online_mitra):
    session, mitra = _ended_session(paid_session, online_mitra)
    blocking.block_after_session(session_id=session.id, user=session.client)
    response = auth_client(session.client).post(
        "/api/v1/sessions", {"package": "curhat-15", "mitra": mitra.id}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "mitra_not_found")
    assert ChatSession.objects.filter(client=session.client).count() == 1


def test_it_refuses_a_session_nobody_took(paid_session):
    session = paid_session()
    lifecycle.session_end(session_id=session.id, actor=session.client)
    with pytest.raises(Conflict) as refused:
        blocking.block_after_session(session_id=session.id, user=session.client)
    assert refused.value.code == "session_not_started"
    assert Block.objects.count() == 0
