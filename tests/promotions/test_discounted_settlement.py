"""Fair money with a voucher: the Bestie's share on the list price (default: the promotion is the
platform's cost, the platform's part may go negative) or on the paid price (runtime config
`mitra_share_basis`), at settlement and for a refund after it, with exact ledger rows and the
invariant of selectors.session_money."""

from datetime import timedelta

import pytest

from mitras.services import mitra_set_online
from payments.models import Payment
from sessions_app import lifecycle, settlement
from sessions_app.models import EarningsEntry, Status
from sessions_app.selectors import SessionMoney, session_money


def ledger(session):
    return list(
        EarningsEntry.objects.filter(session=session)
        .order_by("id")
        .values_list(
            "kind", "amount_idr", "platform_idr", "share_percent", "served_minutes", "paid_minutes",
            "price_basis", "basis_amount_idr",
        )
    )  # fmt: skip


def assert_balanced(session, *, paid, refunded, mitra, platform):
    money = session_money(session=session)
    assert money == SessionMoney(paid, refunded, mitra, platform, True)
    assert money.client_net_idr == paid - refunded == mitra + platform
    assert money.is_balanced


# curhat-30 lists at 25000; a 50 % voucher: the client pays 12500. The Bestie ends at minute 10 of
# 30: ceil(12500 × 20/30) = 8334 goes back, the client's net is 4166. Finance then refunds 2000
# more: the net is 2166.
#   list_price: basis 4166 + 12500 × 4166/12500 = 8332 → Bestie 5832, platform 4166 − 5832 = −1666;
#               after the refund basis 4332 → Bestie 3032, platform −866 (reversal −2800 / +800).
#   paid_price: basis 4166 → Bestie 2916, platform 1250; after the refund basis 2166 → Bestie 1516,
#               platform 650 (reversal −1400 / −600).
@pytest.mark.parametrize(
    ("basis", "earning", "reversal", "after_end", "after_refund"),
    [
        (
            "list_price",
            ("earning", 5832, -1666, 70, 10, 30, "list_price", 8332),
            ("reversal", -2800, 800, 70, 0, 0, "list_price", -4000),
            (5832, -1666),
            (3032, -866),
        ),
        (
            "paid_price",
            ("earning", 2916, 1250, 70, 10, 30, "paid_price", 4166),
            ("reversal", -1400, -600, 70, 0, 0, "paid_price", -2000),
            (2916, 1250),
            (1516, 650),
        ),
    ],
)
def test_it_settles_a_discounted_session_on_the_configured_basis(
    basis, earning, reversal, after_end, after_refund,
    xendit, post_callback, make_client_user, make_mitra, make_staff, make_voucher, set_config,
):  # fmt: skip
    set_config(mitra_share_basis=basis)
    make_voucher(code="SETENGAH", discount_value=50)
    mitra = make_mitra()
    mitra_set_online(mitra=mitra, is_online=True)
    session = lifecycle.session_create(
        client=make_client_user(), package_code="curhat-30", voucher_code="SETENGAH"
    )
    payment = Payment.objects.get(session=session)
    assert (payment.amount_idr, payment.discount_idr) == (12500, 12500)
    assert post_callback(xendit.paid_callback(payment.invoice_id)).json()["outcome"] == "applied"
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, mitra.id)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    session.refresh_from_db()

    lifecycle.session_end(
        session_id=session.id, actor=mitra.user, now=session.accepted_at + timedelta(minutes=10)
    )
    session.refresh_from_db()
    assert (session.end_reason, session.discount_idr) == ("mitra_ended", 12500)
    assert ledger(session) == [earning]
    assert_balanced(session, paid=12500, refunded=8334, mitra=after_end[0], platform=after_end[1])

    settlement.session_refund_by_staff(
        session_id=session.id, actor=make_staff("finance"), amount_idr=2000, note="Klien komplain"
    )
    assert ledger(session) == [earning, reversal]
    assert_balanced(session, paid=12500, refunded=10334, mitra=after_refund[0], platform=after_refund[1])
