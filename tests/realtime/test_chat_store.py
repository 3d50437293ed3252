"""The message store: the one-statement Postgres path and the ORM path give the same results, and
concurrent senders never get a duplicate or a gap in seq."""

import threading
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from sessions_app import chat_store, stored_message
from sessions_app.errors import NotParticipant
from sessions_app.models import ChatSession, Message
from tests.realtime.conftest import end_session

pytestmark = pytest.mark.django_db(transaction=True)


def _orm(**kwargs):
    return chat_store._store_orm(**kwargs)


def _postgres(**kwargs):
    async def run():
        try:
            return await chat_store._store_postgres(**kwargs)
        finally:
            await chat_store.close_pools()

    return async_to_sync(run)()


def _outcome(store, **kwargs):
    try:
        stored = store(**kwargs)
    except Exception as exc:
        return ("error", getattr(exc, "code", type(exc).__name__))
    return (
        "stored", stored.seq, stored.sender_id, stored.kind, stored.body, stored.client_msg_id,
        stored.is_masked, stored.client_user_id, stored.mitra_user_id, stored.is_duplicate,
    )  # fmt: skip


@pytest.mark.parametrize("store", [_orm, _postgres], ids=["orm", "postgres"])
def test_it_stores_and_refuses_the_same_way_on_both_paths(store, active_session, make_client_user):
    session, client, mitra = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    as_mitra = stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id)
    stranger = stored_message.Sender(user_id=make_client_user().id)
    common = {"session_id": str(session.id), "is_masked": False}
    outcomes = [
        _outcome(store, sender=as_client, body="satu", client_msg_id="c1", **common),
        _outcome(store, sender=as_mitra, body="dua", client_msg_id="c1", **common),
        _outcome(store, sender=as_client, body="satu lagi", client_msg_id="c1", **common),
        _outcome(store, sender=stranger, body="x", client_msg_id="s1", **common),
        _outcome(
            store,
            sender=as_client,
            body="x",
            client_msg_id="c2",
            session_id=str(uuid.uuid4()),
            is_masked=False,
        ),
    ]
    end_session(session, client)
    outcomes.append(_outcome(store, sender=as_client, body="tiga", client_msg_id="c3", **common))
    outcomes.append(_outcome(store, sender=as_mitra, body="dua", client_msg_id="c1", **common))
    assert outcomes == [
        ("stored", 1, client.id, "text", "satu", "c1", False, client.id, mitra.user_id, False),
        ("stored", 2, mitra.user_id, "text", "dua", "c1", False, client.id, mitra.user_id, False),
        ("stored", 1, client.id, "text", "satu", "c1", False, client.id, mitra.user_id, True),
        ("error", "not_participant"),
        ("error", "session_not_found"),
        ("error", "session_not_active"),
        ("stored", 2, mitra.user_id, "text", "dua", "c1", False, client.id, mitra.user_id, True),
    ]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "body")) == [
        (1, "satu"), (2, "dua")
    ]  # fmt: skip


def test_it_never_gives_concurrent_senders_a_duplicate_or_a_gap(active_session):
    assert connection.vendor == "postgresql"
    session, client, mitra = active_session()
    senders = [
        stored_message.Sender(user_id=client.id),
        stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id),
    ]
    per_thread, threads_count = 25, 8
    results, errors = [], []
    start = threading.Barrier(threads_count)

    def send(index):
        sender = senders[index % 2]
        store = _postgres if index % 4 < 2 else _orm
        try:
            start.wait()
            for number in range(per_thread):
                # Every message is sent twice (a resend), concurrently with the other threads.
                for _ in range(2):
                    stored = store(
                        session_id=str(session.id), sender=sender, body=f"t{index} m{number}",
                        client_msg_id=f"t{index}-m{number}", is_masked=False,
                    )  # fmt: skip
                    results.append((stored.client_msg_id, stored.seq))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = per_thread * threads_count
    seqs = list(Message.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, total + 1))
    assert ChatSession.objects.get(pk=session.pk).last_seq == total
    by_id = {}
    for client_msg_id, seq in results:
        assert by_id.setdefault(client_msg_id, seq) == seq  # a resend got the same seq
    assert len(by_id) == total


@pytest.mark.parametrize("store", [_orm, _postgres], ids=["orm", "postgres"])
def test_it_stores_the_crisis_flag_with_the_message_on_both_paths(store, active_session, make_client_user):
    session, client, mitra = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    common = {"session_id": str(session.id), "is_masked": False}
    stranger = stored_message.Sender(user_id=make_client_user().id)
    with pytest.raises(NotParticipant):
        store(sender=stranger, body="x", client_msg_id="s1", crisis_source="client", **common)
    assert ChatSession.objects.get(pk=session.pk).is_flagged is False  # refused: nothing flagged

    first = store(sender=as_client, body="a", client_msg_id="c1", crisis_source="client", **common)
    again = store(sender=as_client, body="a", client_msg_id="c1", crisis_source="client", **common)
    store(sender=as_client, body="b", client_msg_id="c2", **common)
    assert again.is_duplicate is True
    stored = ChatSession.objects.get(pk=session.pk)
    assert (stored.is_flagged, stored.needs_staff_attention, stored.crisis_followup_pending) == (
        True,
        True,
        True,
    )
    assert stored.flagged_at == Message.objects.get(pk=first.id).created_at
    assert list(stored.events.filter(kind="crisis_flagged").values_list("data", flat=True)) == [
        {"message_id": first.id, "source": "client"}
    ]
