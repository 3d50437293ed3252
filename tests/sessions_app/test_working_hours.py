"""Working hours in assignment (real Postgres): being online is consent, so hours never exclude
an online Bestie, but among free Besties who fit alike, those inside their hours rank first."""

from django.utils import timezone

from mitras import schedule
from sessions_app.models import Status

ALL_DAY = {"start": "00:00", "end": "24:00"}


def _today_and_another_day():
    today = timezone.now().astimezone(schedule.JAKARTA).isoweekday()
    return today, today % 7 + 1


def test_it_offers_to_the_free_bestie_inside_working_hours_first(online_mitra, paid_session):
    today, tomorrow = _today_and_another_day()
    outside = online_mitra()  # the lower id: the idle-longest tie-break alone would pick it
    inside = online_mitra()
    schedule.working_hours_replace(mitra=outside, intervals=[{"weekday": tomorrow, **ALL_DAY}])
    schedule.working_hours_replace(mitra=inside, intervals=[{"weekday": today, **ALL_DAY}])

    session = paid_session()

    assert (session.status, session.mitra_id) == (Status.OFFERED, inside.id)


def test_it_still_offers_to_an_online_bestie_outside_working_hours(online_mitra, paid_session):
    _, tomorrow = _today_and_another_day()
    only = online_mitra()
    schedule.working_hours_replace(mitra=only, intervals=[{"weekday": tomorrow, **ALL_DAY}])

    session = paid_session()

    assert (session.status, session.mitra_id) == (Status.OFFERED, only.id)


def test_it_ranks_working_hours_before_load(online_mitra, paid_session):
    today, _ = _today_and_another_day()
    no_hours = online_mitra()
    inside = online_mitra()
    schedule.working_hours_replace(mitra=inside, intervals=[{"weekday": today, **ALL_DAY}])

    first = paid_session()
    second = paid_session()

    # Inside hours outranks a lighter load: the one without hours gets what the other cannot take.
    assert (first.mitra_id, second.mitra_id) == (inside.id, inside.id)
    third, fourth = paid_session(), paid_session()
    assert (third.mitra_id, fourth.mitra_id) == (inside.id, no_hours.id)
