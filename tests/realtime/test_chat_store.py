"""The message store: the one-statement Postgres path and the ORM path give the same results, and
concurrent senders never get a duplicate or a gap in seq."""

import asyncio
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


# Group commit: the messages waiting at one moment are stored in one transaction -----------------


def _send_together(sends):
    """Every (sender, session_id, body, client_msg_id[, crisis_source]) of `sends` at the same
    moment on one event loop: with one writer, they are all waiting when it starts (or when it
    has stored the first alone), so they go in one batch. The outcomes in the order of `sends`."""

    async def one(sender, session_id, body, client_msg_id, crisis_source=""):
        try:
            return await chat_store._store_postgres(
                session_id=session_id, sender=sender, body=body, client_msg_id=client_msg_id,
                is_masked=False, crisis_source=crisis_source,
            )  # fmt: skip
        except Exception as exc:
            return ("error", getattr(exc, "code", type(exc).__name__))

    async def run():
        try:
            return await asyncio.gather(*(one(*send) for send in sends))
        finally:
            await chat_store.close_pools()

    return async_to_sync(run)()


def _transactions(session_ids):
    """How many transactions stored the messages of these sessions (their rows' xmin)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT xmin::text) FROM sessions_app_message WHERE session_id::text = ANY(%s)",
            [[str(sid) for sid in session_ids]],
        )
        return cursor.fetchone()[0]


def test_it_stores_concurrent_senders_of_several_sessions_in_one_batch_without_gaps(active_session, settings):
    settings.REALTIME_DB_WRITERS = 1
    sessions = [active_session() for _ in range(3)]
    sends = []
    for number in range(10):
        for session, client, mitra in sessions:
            as_client = stored_message.Sender(user_id=client.id)
            sends.append((as_client, str(session.id), f"c{number}", f"c{number}"))
            as_mitra = stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id)
            sends.append((as_mitra, str(session.id), f"m{number}", f"m{number}"))
    sends.append(sends[0][:3] + ("crisis", "client"))  # a crisis message in the batch too

    outcomes = _send_together(sends)

    assert [type(o) for o in outcomes] == [stored_message.StoredMessage] * len(sends)
    assert not any(o.is_duplicate for o in outcomes)
    for session, _, _ in sessions:
        messages = Message.objects.filter(session=session).order_by("seq")
        rows = list(messages.values_list("seq", "client_msg_id"))
        expected = 21 if session == sessions[0][0] else 20
        assert [seq for seq, _ in rows] == list(range(1, expected + 1))
        assert ChatSession.objects.get(pk=session.pk).last_seq == expected
        # Each sender's messages keep the order they were sent in.
        for prefix in ("c", "m"):
            mine = [cmid for _, cmid in rows if cmid.startswith(prefix) and cmid != "crisis"]
            assert mine == [f"{prefix}{n}" for n in range(10)]
    answered = {(o.session_id, o.client_msg_id): o.seq for o in outcomes}
    rows = Message.objects.values_list("session_id", "client_msg_id", "seq")
    stored = {(str(sid), cmid): seq for sid, cmid, seq in rows}
    assert answered == stored
    flagged = ChatSession.objects.get(pk=sessions[0][0].pk)
    assert (flagged.is_flagged, flagged.crisis_followup_pending) == (True, True)
    crisis = Message.objects.get(session=sessions[0][0], client_msg_id="crisis")
    assert list(flagged.events.filter(kind="crisis_flagged").values_list("data", flat=True)) == [
        {"message_id": crisis.id, "source": "client"}
    ]
    assert ChatSession.objects.get(pk=sessions[1][0].pk).is_flagged is False
    # One transaction for all of them (or the first alone, then the rest): not 61.
    assert _transactions([s.id for s, _, _ in sessions]) <= 2


def test_it_answers_a_resend_inside_a_batch_with_the_first_message(active_session, settings):
    settings.REALTIME_DB_WRITERS = 1
    session, client, mitra = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    as_mitra = stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id)
    sid = str(session.id)
    earlier = _send_together([(as_client, sid, "dulu", "old")])[0]

    outcomes = _send_together(
        [
            (as_mitra, sid, "halo", "m1"),
            (as_client, sid, "satu", "c1"),
            (as_client, sid, "satu", "c1"),  # resent in the same batch
            (as_client, sid, "dulu", "old"),  # resent after it was stored
            (as_mitra, sid, "dua", "m2"),
        ]
    )

    summary = [(o.client_msg_id, o.seq, o.is_duplicate) for o in outcomes]
    assert summary == [
        ("m1", 2, False), ("c1", 3, False), ("c1", 3, True), ("old", 1, True), ("m2", 4, False)
    ]  # fmt: skip
    assert outcomes[2].id == outcomes[1].id and outcomes[3].id == earlier.id
    assert outcomes[3].body == "dulu"
    rows = Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_msg_id")
    assert list(rows) == [(1, "old"), (2, "m1"), (3, "c1"), (4, "m2")]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 4
    assert _transactions([session.id]) <= 3  # the earlier one, then one batch (or m1 alone first)


def test_it_keeps_the_other_messages_of_a_batch_when_one_fails(active_session, make_client_user, settings):
    settings.REALTIME_DB_WRITERS = 1
    session, client, mitra = active_session()
    ended, ended_client, _ = active_session()
    end_session(ended, ended_client)
    as_client = stored_message.Sender(user_id=client.id)
    stranger = stored_message.Sender(user_id=make_client_user().id)
    sid = str(session.id)

    outcomes = _send_together(
        [
            (as_client, sid, "satu", "c1"),
            (as_client, sid, "dua", "c2"),
            (stranger, sid, "x", "s1"),  # refused in the batch
            (stored_message.Sender(user_id=ended_client.id), str(ended.id), "x", "e1"),  # refused too
            (as_client, "not-a-uuid", "x", "u1"),  # an error: the batch is stored again one by one
            (as_client, str(uuid.uuid4()), "x", "n1"),
            (as_client, sid, "tiga", "c3"),
        ]
    )

    summary = [o if isinstance(o, tuple) else (o.client_msg_id, o.seq) for o in outcomes]
    assert summary == [
        ("c1", 1),
        ("c2", 2),
        ("error", "not_participant"),
        ("error", "session_not_active"),
        ("error", "session_not_found"),
        ("error", "session_not_found"),
        ("c3", 3),
    ]
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "body")) == [
        (1, "satu"), (2, "dua"), (3, "tiga")
    ]  # fmt: skip
    assert ChatSession.objects.get(pk=session.pk).last_seq == 3
    assert not Message.objects.filter(session=ended).exists()


# The batch window: a busy process waits a moment for more messages, a quiet one does not -------


def _send_after_a_stored_one(first, spaced, *, gap):
    """On one event loop: `first` stored (the process has just stored a batch: it is busy), then
    each send of `spaced` `gap` seconds after the one before. Every send is bounded (20 s): a
    window that never ends fails the test instead of hanging it. The outcomes of `spaced`."""

    async def one(sender, session_id, body, client_msg_id):
        return await asyncio.wait_for(
            chat_store._store_postgres(
                session_id=session_id, sender=sender, body=body, client_msg_id=client_msg_id, is_masked=False
            ),
            20,
        )

    async def run():
        try:
            await one(*first)
            tasks = []
            for send in spaced:
                tasks.append(asyncio.ensure_future(one(*send)))
                await asyncio.sleep(gap)
            return await asyncio.gather(*tasks)
        finally:
            await chat_store.close_pools()

    return async_to_sync(run)()


def test_a_busy_process_stores_the_messages_of_its_batch_window_in_one_transaction(active_session, settings):
    settings.REALTIME_DB_WRITERS = 2
    settings.REALTIME_DB_BATCH_WINDOW_MS = 2000  # long, so that a loaded machine cannot split it
    session, client, mitra = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    as_mitra = stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id)
    sid = str(session.id)
    spaced = [(as_client if n % 2 else as_mitra, sid, f"pesan {n}", f"w{n}") for n in range(6)]

    outcomes = _send_after_a_stored_one((as_client, sid, "pertama", "first"), spaced, gap=0.01)

    assert [(o.client_msg_id, o.seq) for o in outcomes] == [(f"w{n}", n + 2) for n in range(6)]
    rows = Message.objects.filter(session=session, client_msg_id__startswith="w")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT xmin::text) FROM sessions_app_message WHERE id = ANY(%s)",
            [list(rows.values_list("id", flat=True))],
        )
        assert cursor.fetchone()[0] == 1  # six messages sent 10 ms apart: one statement, one commit


def test_a_quiet_process_stores_a_lone_message_without_the_window(active_session, settings):
    settings.REALTIME_DB_WRITERS = 2
    settings.REALTIME_DB_BATCH_WINDOW_MS = 600_000  # ten minutes: waiting it out fails the 20 s bound
    session, client, _ = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    sid = str(session.id)

    # The first message of a fresh process, then one sent well after the last batch was stored.
    async def run():
        try:
            first = await asyncio.wait_for(
                chat_store._store_postgres(
                    session_id=sid, sender=as_client, body="pertama", client_msg_id="q1", is_masked=False
                ),
                20,
            )
            await asyncio.sleep(3 * chat_store.BUSY_SECONDS)
            second = await asyncio.wait_for(
                chat_store._store_postgres(
                    session_id=sid, sender=as_client, body="kedua", client_msg_id="q2", is_masked=False
                ),
                20,
            )
            return first, second
        finally:
            await chat_store.close_pools()

    outcomes = async_to_sync(run)()

    assert [(o.client_msg_id, o.seq) for o in outcomes] == [("q1", 1), ("q2", 2)]


# The multi-row statement: several event loops (processes) storing batches at once ---------------


def test_it_keeps_seqs_gapless_and_in_send_order_with_batches_of_several_loops_at_once(active_session):
    """Four event loops (as four server processes), each with a "socket" per sender of three
    sessions sending one message after the other (as a consumer does); loops 2 and 3 resend
    exactly what loops 0 and 1 send, at the same time. Every message is stored once, each
    session's seqs are 1…n with no gap, each socket's messages keep their order, and both copies
    of a message get the same answer (the statement that lost the race is stored again one by one)."""
    sessions = [active_session() for _ in range(3)]
    streams = []
    for session, client, mitra in sessions:
        streams.append((str(session.id), stored_message.Sender(user_id=client.id), "c"))
        streams.append(
            (str(session.id), stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id), "m")
        )
    per_stream, loops = 12, 4
    answers = [None] * loops
    errors = []
    start = threading.Barrier(loops)

    async def stream(session_id, sender, prefix, copy):
        out = []
        for number in range(per_stream):
            stored = await chat_store._store_postgres(
                session_id=session_id, sender=sender, body=f"{prefix}{copy}-{number}",
                client_msg_id=f"{prefix}{copy}-{number}", is_masked=False,
            )  # fmt: skip
            out.append(stored)
        return out

    def run(index):
        async def all_streams():
            try:
                return await asyncio.gather(*(stream(*s, copy=index % 2) for s in streams))
            finally:
                await chat_store.close_pools()

        try:
            start.wait()
            answers[index] = asyncio.run(all_streams())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for session, _, _ in sessions:
        rows = list(
            Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_msg_id")
        )
        assert [seq for seq, _ in rows] == list(range(1, 4 * per_stream + 1))  # 2 senders × 2 copies
        assert ChatSession.objects.get(pk=session.pk).last_seq == 4 * per_stream
        assert len({cmid for _, cmid in rows}) == len(rows)
    stored = {(str(s), sender, cmid): (mid, seq) for s, sender, cmid, mid, seq in Message.objects.values_list(
        "session_id", "sender_id", "client_msg_id", "id", "seq")}  # fmt: skip
    for loop_answers in answers:
        for outs in loop_answers:
            assert [o.seq for o in outs] == sorted(o.seq for o in outs)  # in the order sent
            for o in outs:
                assert stored[(o.session_id, o.sender_id, o.client_msg_id)] == (o.id, o.seq)
    # Of the two copies of each message exactly one was stored, the other is the same message.
    for first, second in ((answers[0], answers[2]), (answers[1], answers[3])):
        for outs_a, outs_b in zip(first, second, strict=True):
            assert [(o.id, o.seq) for o in outs_a] == [(o.id, o.seq) for o in outs_b]
            assert all(a.is_duplicate != b.is_duplicate for a, b in zip(outs_a, outs_b, strict=True))


def test_it_answers_resends_of_the_same_batch_and_of_earlier_batches_with_the_first_message(
    active_session, settings
):
    settings.REALTIME_DB_WRITERS = 1
    session, client, mitra = active_session()
    other, other_client, _ = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    as_other = stored_message.Sender(user_id=other_client.id)
    sid, other_sid = str(session.id), str(other.id)
    first = _send_together([(as_client, sid, "satu", "c1"), (as_other, other_sid, "lain", "o1")])

    outcomes = _send_together(
        [
            (as_client, sid, "dua", "c2"),
            (as_client, sid, "satu lagi", "c1"),  # stored in the batch before, another body
            (as_other, other_sid, "lain", "o1"),
            (as_client, sid, "dua", "c2"),  # twice more in this batch
            (as_client, sid, "dua", "c2"),
            (as_other, other_sid, "lagi", "o2"),
        ]
    )

    summary = [(o.session_id, o.client_msg_id, o.seq, o.is_duplicate, o.body) for o in outcomes]
    assert summary == [
        (sid, "c2", 2, False, "dua"),
        (sid, "c1", 1, True, "satu"),
        (other_sid, "o1", 1, True, "lain"),
        (sid, "c2", 2, True, "dua"),
        (sid, "c2", 2, True, "dua"),
        (other_sid, "o2", 2, False, "lagi"),
    ]
    assert outcomes[1].id == first[0].id and outcomes[2].id == first[1].id
    assert outcomes[3].id == outcomes[4].id == outcomes[0].id
    assert list(Message.objects.filter(session=session).order_by("seq").values_list("seq", "body")) == [
        (1, "satu"), (2, "dua")
    ]  # fmt: skip
    assert ChatSession.objects.get(pk=session.pk).last_seq == 2
    assert ChatSession.objects.get(pk=other.pk).last_seq == 2


def test_it_stores_the_rest_of_a_batch_whose_statement_fails_one_by_one(active_session, settings):
    """A row the database refuses (a client_msg_id longer than the column: the consumer never
    sends one) fails the batch's statement: nothing of it is answered from that statement, every
    message is stored again on its own, and only the refused one gets an error."""
    settings.REALTIME_DB_WRITERS = 1
    session, client, mitra = active_session()
    other, other_client, _ = active_session()
    as_client = stored_message.Sender(user_id=client.id)
    as_mitra = stored_message.Sender(user_id=mitra.user_id, mitra_id=mitra.id)
    sid = str(session.id)
    _send_together([(as_client, sid, "nol", "c0")])

    outcomes = _send_together(
        [
            (as_client, sid, "satu", "c1"),
            (as_mitra, sid, "dua", "m1"),
            (as_client, sid, "x", "c" * 65),
            (stored_message.Sender(user_id=other_client.id), str(other.id), "lain", "o1"),
            (as_client, sid, "nol", "c0"),  # a resend
            (as_client, sid, "tiga", "c2"),
        ]
    )

    summary = [o if isinstance(o, tuple) else (o.client_msg_id, o.seq, o.is_duplicate) for o in outcomes]
    assert summary == [
        ("c1", 2, False),
        ("m1", 3, False),
        ("error", "StringDataRightTruncation"),
        ("o1", 1, False),
        ("c0", 1, True),
        ("c2", 4, False),
    ]
    rows = Message.objects.filter(session=session).order_by("seq").values_list("seq", "client_msg_id")
    assert list(rows) == [(1, "c0"), (2, "c1"), (3, "m1"), (4, "c2")]
    assert ChatSession.objects.get(pk=session.pk).last_seq == 4
    assert ChatSession.objects.get(pk=other.pk).last_seq == 1
