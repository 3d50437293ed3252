"""Campaigns and codes as finance creates them, clients that use them, and the fake Xendit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from promotions.models import Campaign, Voucher
from tests.accounts.conftest import fazpass  # noqa: F401 (the fake Fazpass, for re-signups)
from tests.payments.conftest import post_callback, xendit  # noqa: F401 (the fake Xendit)


@pytest.fixture
def make_voucher():
    """A campaign with one code. Keyword arguments go to the campaign, except `code` and
    `max_redemptions` (the code's total limit)."""
    counter = iter(range(1, 10_000))

    def make(code=None, max_redemptions=None, **campaign_fields):
        number = next(counter)
        now = timezone.now()
        campaign_fields.setdefault("name", f"Kampanye {number}")
        campaign_fields.setdefault("discount_kind", "percent")
        campaign_fields.setdefault("discount_value", 50)
        campaign_fields.setdefault("starts_at", now - timedelta(days=1))
        campaign_fields.setdefault("ends_at", now + timedelta(days=30))
        campaign = Campaign.objects.create(**campaign_fields)
        return Voucher.objects.create(
            campaign=campaign, code=code or f"PROMO{number}", max_redemptions=max_redemptions
        )

    return make


@pytest.fixture(autouse=True)
def _real_commits(transactional_db):
    """Sessions dispatch the queue after commit, and races need real transactions."""


@pytest.fixture
def set_config():
    """Change runtime config values through the real service."""
    from halobestie.runtime.selectors import get_config, invalidate_local
    from halobestie.runtime.services import runtime_config_update

    def change(**values):
        runtime_config_update(values={**get_config().to_json(), **values})
        invalidate_local()

    return change


@pytest.fixture
def serve_session(make_mitra):
    """Run a paid session through a Bestie: offered, accepted (and ended unless told not to)."""
    from mitras.services import mitra_set_online
    from sessions_app import lifecycle, matching
    from sessions_app.models import ChatSession

    def serve(session, *, end=True):
        mitra = make_mitra()
        mitra_set_online(mitra=mitra, is_online=True)
        matching.queue_dispatch()
        session = ChatSession.objects.select_related("mitra").get(pk=session.pk)
        assert session.status == "offered", session.status
        lifecycle.session_accept(session_id=session.pk, mitra=session.mitra)
        if end:
            lifecycle.session_end(session_id=session.pk, actor=session.client)
        return ChatSession.objects.get(pk=session.pk)

    return serve
