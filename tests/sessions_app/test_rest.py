"""Rest for Besties (real Postgres): a cool-down after a crisis-flagged session, a break after the
configured number of sessions in a row; resting Besties get no offers, staff and the Bestie see it."""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db import transaction

from halobestie.runtime.schema import validate_values
from halobestie.runtime.services import runtime_config_update
from mitras import selectors
from mitras.models import Mitra
from mitras.rest import mitra_session_finished
from mitras.services import mitra_heartbeat
from sessions_app import chat_store, handoff, lifecycle, matching, stored_message
from sessions_app.models import Status
from tests.conftest import auth_client


def served(paid_session, mitra, *, crisis=False):
    """A session offered to `mitra` (the only one free), accepted, optionally flagged by a crisis
    message from the client, then ended by the client. Returns it, ended."""
    session = paid_session()
    assert (session.status, session.mitra_id) == (Status.OFFERED, mitra.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    if crisis:
        _send(session, "aku pengen mati")
    lifecycle.session_end(session_id=session.id, actor=session.client)
    session.refresh_from_db()
    assert session.status == Status.ENDED
    return session


def _send(session, body):
    async def run():
        try:
            return await chat_store.message_send(
                session_id=session.id,
                sender=stored_message.Sender(user_id=session.client_id, mitra_id=None),
                body=body,
                client_msg_id=uuid.uuid4().hex,
            )
        finally:
            await chat_store.close_pools()

    stored = async_to_sync(run)()
    assert stored.crisis_source
    handoff.crisis_followup(session_id=session.id)


def dispatch_at(moment, mitra):
    mitra_heartbeat(mitra=mitra, now=moment)
    matching.queue_dispatch(now=moment)


def test_it_gives_no_offers_during_the_cool_down_after_a_crisis_session(online_mitra, paid_session):
    runtime_config_update(values={"mitra_crisis_cooldown_seconds": 1200})
    mitra = online_mitra()
    hard = served(paid_session, mitra, crisis=True)
    mitra.refresh_from_db()
    assert (mitra.rest_until, mitra.rest_reason) == (hard.ended_at + timedelta(seconds=1200), "crisis")

    waiting = paid_session()  # the only online Bestie is cooling down: no offer

    assert (waiting.status, waiting.mitra_id) == (Status.MATCHING, None)
    presence = selectors.mitra_presence(mitra=mitra)
    assert (presence.is_present, presence.is_available) == (True, False)
    assert selectors.availability_compute()["available"] == 0
    me = auth_client(mitra.user).get("/api/v1/mitra/me").json()
    assert (me["rest_until"] is not None, me["rest_reason"], me["sessions_in_row"]) == (True, "crisis", 1)

    dispatch_at(hard.ended_at + timedelta(seconds=1199), mitra)
    waiting.refresh_from_db()
    assert waiting.status == Status.MATCHING
    dispatch_at(hard.ended_at + timedelta(seconds=1200), mitra)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.mitra_id) == (Status.OFFERED, mitra.id)


def test_it_offers_to_another_bestie_while_one_cools_down(online_mitra, paid_session):
    resting = online_mitra()
    served(paid_session, resting, crisis=True)
    other = online_mitra()
    Mitra.objects.filter(pk=other.pk).update(load=2)  # busier: without the rest it would lose

    session = paid_session()

    assert (session.status, session.mitra_id) == (Status.OFFERED, other.id)


def test_it_needs_no_rest_after_an_ordinary_session(online_mitra, paid_session):
    mitra = online_mitra()
    served(paid_session, mitra)
    mitra.refresh_from_db()
    assert (mitra.rest_until, mitra.rest_reason, mitra.sessions_in_row) == (None, "", 1)
    assert paid_session().mitra_id == mitra.id


def test_it_gives_a_break_after_the_maximum_sessions_in_a_row(online_mitra, paid_session):
    runtime_config_update(values={"mitra_max_sessions_in_row": 2, "mitra_break_seconds": 600})
    mitra = online_mitra()
    served(paid_session, mitra)
    mitra.refresh_from_db()
    assert (mitra.sessions_in_row, mitra.rest_until) == (1, None)
    second = served(paid_session, mitra)
    mitra.refresh_from_db()
    assert (mitra.sessions_in_row, mitra.rest_until, mitra.rest_reason) == (
        0,
        second.ended_at + timedelta(seconds=600),
        "break",
    )

    waiting = paid_session()
    assert waiting.status == Status.MATCHING
    dispatch_at(second.ended_at + timedelta(seconds=599), mitra)
    waiting.refresh_from_db()
    assert waiting.status == Status.MATCHING
    dispatch_at(second.ended_at + timedelta(seconds=600), mitra)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.mitra_id) == (Status.OFFERED, mitra.id)


def test_it_starts_the_run_again_after_a_gap_as_long_as_the_break(make_mitra):
    runtime_config_update(values={"mitra_max_sessions_in_row": 3, "mitra_break_seconds": 600})
    mitra = make_mitra()
    t0 = Mitra.objects.get(pk=mitra.pk).created_at

    def finish(accepted_minute, ended_minute):
        with transaction.atomic():
            return mitra_session_finished(
                mitra_id=mitra.id,
                accepted_at=t0 + timedelta(minutes=accepted_minute),
                ended_at=t0 + timedelta(minutes=ended_minute),
                was_flagged=False,
            )

    assert finish(0, 30).sessions_in_row == 1
    assert finish(39, 60).sessions_in_row == 2  # 9 minutes after: still in a row
    assert finish(70, 90).sessions_in_row == 1  # 10 minutes after: that was a break
    assert finish(85, 95).sessions_in_row == 2  # side by side with the one before: in a row
    third = finish(95, 120)
    assert (third.sessions_in_row, third.rest_until, third.rest_reason) == (
        0,
        t0 + timedelta(minutes=130),
        "break",
    )


def test_it_keeps_the_longer_rest_when_both_are_due(make_mitra):
    runtime_config_update(
        values={
            "mitra_max_sessions_in_row": 1,
            "mitra_break_seconds": 600,
            "mitra_crisis_cooldown_seconds": 1800,
        }
    )
    mitra = make_mitra()
    t0 = Mitra.objects.get(pk=mitra.pk).created_at
    with transaction.atomic():
        rested = mitra_session_finished(
            mitra_id=mitra.id, accepted_at=t0, ended_at=t0 + timedelta(minutes=30), was_flagged=True
        )
    assert (rested.rest_until, rested.rest_reason) == (t0 + timedelta(minutes=60), "crisis")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"mitra_crisis_cooldown_seconds": -1}, "mitra_crisis_cooldown_seconds"),
        ({"mitra_crisis_cooldown_seconds": 86401}, "mitra_crisis_cooldown_seconds"),
        ({"mitra_max_sessions_in_row": 101}, "mitra_max_sessions_in_row"),
        ({"mitra_max_sessions_in_row": "8"}, "mitra_max_sessions_in_row"),
        ({"mitra_break_seconds": 59}, "mitra_break_seconds"),
        ({"mitra_break_seconds": True}, "mitra_break_seconds"),
    ],
)
def test_it_refuses_rest_settings_out_of_bounds(values, field):
    with pytest.raises(ValidationError) as error:
        validate_values(values)
    assert list(error.value.message_dict) == [field]


def test_it_shows_staff_who_is_resting_and_the_run(online_mitra, paid_session, internal_client, make_staff):
    mitra = online_mitra(display_name="Bestie Lelah")
    served(paid_session, mitra, crisis=True)
    internal_client.force_login(make_staff("support"))

    listing = internal_client.get("/admin/mitras/mitra/").content.decode()
    detail = internal_client.get(f"/admin/mitras/mitra/{mitra.pk}/change/").content.decode()

    for page in (listing, detail):
        assert "Istirahat sampai" in page
        assert "Pendinginan setelah sesi krisis" in page
        assert "Sesi beruntun" in page


def test_it_lets_staff_end_a_rest_early_and_offers_at_once(
    online_mitra, paid_session, internal_client, make_staff
):
    from halobestie.audit.models import AuditEntry

    mitra = online_mitra()
    served(paid_session, mitra, crisis=True)
    waiting = paid_session()
    assert waiting.status == Status.MATCHING
    internal_client.force_login(make_staff("support"))

    internal_client.post("/admin/mitras/mitra/", {"action": "end_rest", "_selected_action": [str(mitra.pk)]})

    mitra.refresh_from_db()
    waiting.refresh_from_db()
    assert (mitra.rest_until, mitra.rest_reason) == (None, "")
    assert (waiting.status, waiting.mitra_id) == (Status.OFFERED, mitra.id)
    assert AuditEntry.objects.filter(action="mitra_rest_end", object_id=str(mitra.pk)).count() == 1
