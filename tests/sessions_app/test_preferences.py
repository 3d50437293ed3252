"""Preferences on POST /sessions and how assignment honours, then relaxes them (real Postgres)."""

from datetime import timedelta

import pytest

from halobestie.runtime.services import runtime_config_update
from mitras.services import mitra_heartbeat
from payments.models import Refund
from sessions_app import lifecycle, matching, timers
from sessions_app.models import ChatSession, OfferOutcome, SessionEvent, SessionOffer, Status
from sessions_app.serializers import session_payload
from tests.conftest import auth_client

WISHES = {"gender": "female", "language": "jv", "topics": ["keluarga"]}


def wishful_session(make_client_user, **fields):
    session = lifecycle.session_create(
        client=make_client_user(), package_code="curhat-15", **{**WISHES, **fields}
    )
    lifecycle.session_mark_paid(session_id=session.id)
    session.refresh_from_db()
    return session


def dispatch_at(moment, *mitras):
    """The scheduler's tick at `moment`, the Besties' apps having sent a heartbeat then."""
    for mitra in mitras:
        mitra_heartbeat(mitra=mitra, now=moment)
    matching.queue_dispatch(now=moment)


def test_it_offers_the_bestie_who_fits_every_preference(make_client_user, online_mitra):
    online_mitra(gender="female", languages=["id"], topics=["keluarga"])
    online_mitra(gender="male", languages=["jv"], topics=["keluarga"])
    fits = online_mitra(gender="female", languages=["id", "jv"], topics=["kerja", "keluarga"])
    online_mitra(gender="female", languages=["jv"], topics=["kerja"])
    session = wishful_session(make_client_user)
    assert (session.status, session.mitra_id) == (Status.OFFERED, fits.id)
    assert session_payload(session)["preferences"] == {
        "topics": ["keluarga"],
        "gender": "female",
        "language": "jv",
        "held": ["gender", "topics", "language"],
        "relaxed": [],
    }


def test_it_relaxes_one_preference_at_a_time_in_the_configured_order(make_client_user, online_mitra):
    runtime_config_update(
        values={
            "preference_relax_order": ["language", "gender", "topics"],
            "preference_relax_after_seconds": [30, 90, 150],
        }
    )
    only = online_mitra(gender="male", languages=["id"], topics=["kerja"])
    session = wishful_session(make_client_user)
    assert session.status == Status.MATCHING
    start = session.matching_started_at
    seen = []
    for seconds, relaxed in ((29, []), (30, ["language"]), (89, ["language"]), (90, ["language", "gender"])):
        dispatch_at(start + timedelta(seconds=seconds), only)
        session.refresh_from_db()
        assert (session.status, session.relaxed_preferences) == (Status.MATCHING, relaxed)
        seen.append(session_payload(session)["preferences"]["held"])
    assert seen == [
        ["gender", "topics", "language"],
        ["gender", "topics"],
        ["gender", "topics"],
        ["topics"],
    ]
    dispatch_at(start + timedelta(seconds=150), only)
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, only.id)
    assert session.relaxed_preferences == ["language", "gender", "topics"]
    relaxations = list(
        SessionEvent.objects.filter(session=session, kind="preferences_relaxed").values_list(
            "data", flat=True
        )
    )
    assert relaxations == [
        {"relaxed": ["language"], "held": ["gender", "topics"]},
        {"relaxed": ["gender"], "held": ["topics"]},
        {"relaxed": ["topics"], "held": []},
    ]


def test_it_relaxes_only_what_the_client_asked_for(make_client_user, online_mitra):
    only = online_mitra(gender="male", languages=["id"], topics=[])
    session = wishful_session(make_client_user, gender=None, topics=None)  # language only
    start = session.matching_started_at
    dispatch_at(start + timedelta(seconds=59), only)
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    dispatch_at(start + timedelta(seconds=60), only)  # the first delay lets go the only wish
    session.refresh_from_db()
    assert (session.status, session.mitra_id, session.relaxed_preferences) == (
        Status.OFFERED,
        only.id,
        ["language"],
    )


def test_it_refuses_relax_delays_past_the_matching_window():
    from django.core.exceptions import ValidationError

    from halobestie.runtime.schema import validate_values

    with pytest.raises(ValidationError) as error:
        validate_values({"matching_timeout_seconds": 120, "preference_relax_after_seconds": [30, 60, 120]})
    assert error.value.message_dict == {
        "preference_relax_after_seconds": ["Semua preferensi harus dilepas sebelum batas waktu pencarian."]
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"language": "klingon"}, "language", "Bahasa tidak dikenal."),
        ({"gender": "robot"}, "gender", None),
        ({"topics": ["  "]}, "topics", "Setiap topik 1–50 karakter."),
        ({"topics": "keluarga"}, "topics", None),
    ],
)
def test_it_refuses_bad_preferences_with_a_field_error_and_creates_nothing(
    body, field, message, make_client_user
):
    client = make_client_user()
    response = auth_client(client).post("/api/v1/sessions", {"package": "curhat-15", **body}, format="json")
    assert response.status_code == 400
    envelope = response.json()
    assert list(envelope["error"]["fields"]) == [field]
    if message:
        assert envelope["error"]["fields"][field][0].startswith(message)
    assert ChatSession.objects.count() == 0


def test_it_takes_regional_languages_and_shows_the_preferences_over_rest(make_client_user):
    client = make_client_user()
    api = auth_client(client)
    response = api.post(
        "/api/v1/sessions",
        {
            "package": "curhat-15",
            "language": "MIN",
            "topics": ["Keluarga", "keluarga", "kerja"],
            "gender": "male",
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["preferences"] == {
        "topics": ["keluarga", "kerja"],
        "gender": "male",
        "language": "min",
        "held": ["gender", "topics", "language"],
        "relaxed": [],
    }
    detail = api.get(f"/api/v1/sessions/{response.json()['id']}")
    assert detail.json()["preferences"] == response.json()["preferences"]


def test_it_offers_a_busy_requested_bestie_s_session_to_someone_else(paid_session, online_mitra):
    requested = online_mitra(capacity=1)
    paid_session(mitra=requested)  # fills the requested Bestie's only slot
    other = online_mitra()
    session = paid_session(mitra=requested)
    assert (session.status, session.mitra_id) == (Status.OFFERED, other.id)


def test_it_offers_the_requested_bestie_first_then_falls_back_after_a_decline(paid_session, online_mitra):
    other = online_mitra()
    requested = online_mitra()
    session = paid_session(mitra=requested)
    assert session.mitra_id == requested.id
    lifecycle.session_decline(session_id=session.id, mitra=requested)
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, other.id)


def test_it_refunds_only_this_one_when_the_requested_bestie_never_takes_it(paid_session, online_mitra):
    other = online_mitra()
    requested = online_mitra()
    session = paid_session(mitra=requested, allow_any_mitra=False)
    assert session.mitra_id == requested.id
    lifecycle.session_decline(session_id=session.id, mitra=requested)
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.MATCHING, None)
    later = session.matching_started_at + timedelta(seconds=599)
    dispatch_at(later, other)
    assert timers.matching_expire_due(now=later) == 0
    session.refresh_from_db()
    assert session.status == Status.MATCHING
    assert timers.matching_expire_due(now=later + timedelta(seconds=1)) == 1
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (Status.UNMATCHED, "no_mitra")
    assert Refund.objects.get(session=session).amount_idr == 25000
    assert list(SessionOffer.objects.filter(session=session).values_list("mitra_id", "outcome")) == [
        (requested.id, OfferOutcome.DECLINED)
    ]


def test_it_ignores_preferences_for_the_requested_bestie(make_client_user, online_mitra):
    requested = online_mitra(gender="male", languages=["id"], topics=[])
    online_mitra(gender="female", languages=["jv"], topics=["keluarga"])
    session = wishful_session(make_client_user, mitra_id=requested.id)
    assert session.mitra_id == requested.id
