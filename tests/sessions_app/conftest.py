import pytest

from sessions_app import lifecycle


@pytest.fixture
def online_mitra(make_mitra):
    """A mitra who went online through the real service (which counts as a heartbeat)."""

    def make(**fields):
        from mitras.services import mitra_set_online

        mitra = make_mitra(**fields)
        mitra_set_online(mitra=mitra, is_online=True)
        mitra.refresh_from_db()
        return mitra

    return make


@pytest.fixture
def paid_session(make_client_user):
    """A session created and paid through the real services (local checkout, no Xendit)."""

    def make(client=None, package="curhat-30", mitra=None, allow_any_mitra=True):
        client = client or make_client_user()
        session = lifecycle.session_create(
            client=client,
            package_code=package,
            mitra_id=mitra.id if mitra else None,
            allow_any_mitra=allow_any_mitra,
        )
        lifecycle.session_mark_paid(session_id=session.id)
        session.refresh_from_db()
        return session

    return make


@pytest.fixture(autouse=True)
def _real_commits(transactional_db):
    """Sessions send events and dispatch the queue after commit: run with real commits."""
