"""Finance in the control center: creates campaigns and codes (audited), sees what they gave."""

from datetime import timedelta

from django.utils import timezone

from halobestie.audit.models import AuditEntry
from payments import services as payments
from payments.models import Payment
from promotions.models import Campaign, Voucher
from sessions_app import lifecycle as sessions


def campaign_form(**overrides):
    now = timezone.localtime()
    data = {
        "name": "Promo Gajian", "description": "", "discount_kind": "percent", "discount_value": "30",
        "max_discount_idr": "10000", "valid_packages": ["curhat-30", "curhat-60"],
        "starts_at_0": now.strftime("%Y-%m-%d"), "starts_at_1": "00:00:00",
        "ends_at_0": (now + timedelta(days=30)).strftime("%Y-%m-%d"), "ends_at_1": "23:59:00",
        "max_redemptions_per_client": "1", "is_first_session_only": "on", "is_active": "on",
        "batch_count": "3", "batch_prefix": "gajian",
        "vouchers-TOTAL_FORMS": "1", "vouchers-INITIAL_FORMS": "0",
        "vouchers-MIN_NUM_FORMS": "0", "vouchers-MAX_NUM_FORMS": "1000",
        "vouchers-0-code": "gajian30", "vouchers-0-max_redemptions": "100",
        "redemptions-TOTAL_FORMS": "0", "redemptions-INITIAL_FORMS": "0",
        "redemptions-MIN_NUM_FORMS": "0", "redemptions-MAX_NUM_FORMS": "0",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_it_lets_finance_create_a_campaign_with_codes_and_audits_it(internal_client, make_staff):
    finance = make_staff("finance")
    internal_client.force_login(finance)
    response = internal_client.post("/admin/promotions/campaign/add/", campaign_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get()
    assert (campaign.discount_kind, campaign.discount_value, campaign.max_discount_idr) == (
        "percent",
        30,
        10000,
    )
    assert campaign.valid_packages == ["curhat-30", "curhat-60"]
    assert campaign.is_first_session_only and campaign.created_by == finance
    codes = Voucher.objects.filter(campaign=campaign)
    assert codes.get(code="GAJIAN30").max_redemptions == 100
    batch = list(codes.exclude(code="GAJIAN30").values_list("code", "max_redemptions"))
    assert len(batch) == 3 and all(code.startswith("GAJIAN-") and limit == 1 for code, limit in batch)
    assert sorted(AuditEntry.objects.filter(actor=finance).values_list("action", flat=True)) == [
        "campaign_create", "voucher_create", "vouchers_generate",
    ]  # fmt: skip


def test_it_refuses_a_percentage_over_100_and_a_bad_code(internal_client, make_staff):
    internal_client.force_login(make_staff("finance"))
    response = internal_client.post(
        "/admin/promotions/campaign/add/",
        campaign_form(discount_value="150", **{"vouchers-0-code": "ada spasi"}),
    )
    assert response.status_code == 200
    assert "Persen harus 1–100." in response.content.decode()
    assert Campaign.objects.count() == 0 and Voucher.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_it_keeps_support_out_of_promotions(internal_client, make_staff):
    internal_client.force_login(make_staff("support"))
    assert internal_client.get("/admin/promotions/campaign/").status_code == 403
    assert internal_client.post("/admin/promotions/campaign/add/", campaign_form()).status_code == 403
    assert Campaign.objects.count() == 0


def test_it_shows_redemptions_per_campaign(
    internal_client, make_staff, make_client_user, make_voucher, serve_session
):
    voucher = make_voucher(code="HITUNG", name="Promo Hitung", discount_kind="fixed", discount_value=5000)
    returning, once, pending = make_client_user(), make_client_user(), make_client_user()
    for client in (returning, once):
        session = sessions.session_create(client=client, package_code="curhat-30", voucher_code="HITUNG")
        payments.local_checkout_complete(
            external_id=Payment.objects.get(session=session).external_id, is_paid=True
        )
        serve_session(session)
    sessions.session_create(client=pending, package_code="curhat-30", voucher_code="HITUNG")  # reserved only
    later = sessions.session_create(client=returning, package_code="curhat-60")  # came back, full price
    sessions.session_mark_paid(session_id=later.pk)
    serve_session(later)

    campaign = Campaign.objects.get(pk=voucher.campaign_id)
    from promotions.selectors import campaigns_with_stats

    stats = campaigns_with_stats(Campaign.objects.filter(pk=campaign.pk)).get()
    assert (
        stats.redemption_count, stats.discount_given_idr, stats.session_count, stats.client_count,
        stats.repeat_client_count, stats.reserved_count,
    ) == (2, 10000, 2, 2, 1, 1)  # fmt: skip

    internal_client.force_login(make_staff("finance"))
    page = internal_client.get("/admin/promotions/campaign/").content.decode()
    assert "Promo Hitung" in page and "10.000" in page and "Klien kembali" in page
    assert internal_client.get(f"/admin/promotions/campaign/{campaign.pk}/change/").status_code == 200
    assert internal_client.get("/admin/promotions/redemption/").status_code == 200


def test_it_changes_a_code_limit_without_touching_its_counter(
    internal_client, make_staff, make_client_user, make_voucher
):
    voucher = make_voucher(code="BATAS", max_redemptions=3)
    campaign = voucher.campaign
    for _ in range(2):
        sessions.session_create(client=make_client_user(), package_code="curhat-30", voucher_code="BATAS")
    finance = make_staff("finance")
    internal_client.force_login(finance)
    url = f"/admin/promotions/campaign/{campaign.pk}/change/"

    def change(limit):
        form = campaign_form(
            name=campaign.name, valid_packages=[], batch_count="", batch_prefix="",
            **{
                "vouchers-TOTAL_FORMS": "1", "vouchers-INITIAL_FORMS": "1", "vouchers-0-id": str(voucher.pk),
                "vouchers-0-campaign": str(campaign.pk), "vouchers-0-code": "BATAS",
                "vouchers-0-max_redemptions": str(limit),
            },
        )  # fmt: skip
        form.pop("is_first_session_only")
        return internal_client.post(url, form)

    refused = change(1)
    assert refused.status_code == 200
    assert "Sudah terpakai 2." in refused.content.decode()
    voucher.refresh_from_db()
    assert (voucher.max_redemptions, voucher.redemptions_taken) == (3, 2)

    assert change(10).status_code == 302
    voucher.refresh_from_db()
    assert (voucher.code, voucher.max_redemptions, voucher.redemptions_taken) == ("BATAS", 10, 2)
    entry = AuditEntry.objects.get(action="voucher_change")
    assert (entry.actor_id, entry.before, entry.after) == (
        finance.pk, {"max_redemptions": 3}, {"max_redemptions": 10},
    )  # fmt: skip
