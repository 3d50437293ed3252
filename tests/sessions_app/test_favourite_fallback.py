"""A favourite Bestie gets the first offer; when she declines or is full, the session falls back to
another Bestie (a favourite is a preference, not "only this one"). Real Postgres, real commits."""

from mitras.favourites import favourite_add
from sessions_app import lifecycle
from sessions_app.models import OfferOutcome, SessionOffer, Status


def test_it_offers_the_favourite_first_then_falls_back_after_her_decline(
    make_client_user, online_mitra, paid_session
):
    client = make_client_user()
    other = online_mitra()
    favourite = online_mitra()
    favourite_add(client=client, mitra_id=favourite.id)
    session = paid_session(client=client)
    assert (session.status, session.mitra_id) == (Status.OFFERED, favourite.id)
    lifecycle.session_decline(session_id=session.id, mitra=favourite)
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, other.id)
    assert list(
        SessionOffer.objects.filter(session=session).order_by("id").values_list("mitra_id", "outcome")
    ) == [
        (favourite.id, OfferOutcome.DECLINED),
        (other.id, OfferOutcome.PENDING),
    ]


def test_it_falls_back_at_once_when_the_favourite_is_full(make_client_user, online_mitra, paid_session):
    client = make_client_user()
    favourite = online_mitra(capacity=1)
    paid_session()  # fills the favourite's only slot (she was the least loaded)
    other = online_mitra()
    favourite_add(client=client, mitra_id=favourite.id)
    session = paid_session(client=client)
    assert (session.status, session.mitra_id) == (Status.OFFERED, other.id)
