"""Staff roles as groups with least privilege, created and kept by `manage.py seed`.

- support: sessions, reports and mitras day to day; no transcripts, no money, no config.
- finance: payments, refunds (partial too), the earnings ledger and payouts, promotions
  (campaigns and codes); sessions read-only.
- admin: everything, including transcripts (audited) and runtime config, and staff accounts:
  support and finance ones only (halobestie/accounts/staff.py says who may manage whom).
Superusers (the seeded admin) have every permission anyway.
"""

from django.contrib.auth.models import Group, Permission

ROLES = {
    "support": [
        "sessions_app.view_chatsession", "sessions_app.force_end_session", "sessions_app.handle_crisis",
        "sessions_app.view_sessionevent", "sessions_app.view_report", "sessions_app.change_report",
        "sessions_app.view_rating", "sessions_app.view_booking", "sessions_app.change_booking",
        "mitras.view_mitra", "mitras.change_mitra",
        "payments.view_payment",
        "runtime.view_runtimeconfig",
    ],
    "finance": [
        "sessions_app.view_chatsession", "sessions_app.view_sessionevent", "sessions_app.view_booking",
        "payments.view_payment", "payments.view_refund", "payments.add_refund", "payments.change_refund",
        "payments.view_paymentcallback",
        "sessions_app.view_earningsentry", "sessions_app.view_payoutbatch", "sessions_app.add_payoutbatch",
        "runtime.view_runtimeconfig",
        "promotions.view_campaign", "promotions.add_campaign", "promotions.change_campaign",
        "promotions.view_voucher", "promotions.add_voucher", "promotions.change_voucher",
        "promotions.view_redemption",
    ],
    "admin": [
        "sessions_app.view_chatsession", "sessions_app.change_chatsession", "sessions_app.view_transcript",
        "sessions_app.force_end_session", "sessions_app.handle_crisis", "sessions_app.view_sessionevent",
        "sessions_app.view_report", "sessions_app.change_report", "sessions_app.view_rating",
        "sessions_app.view_booking", "sessions_app.change_booking",
        "sessions_app.view_earningsentry", "sessions_app.view_payoutbatch", "sessions_app.add_payoutbatch",
        "mitras.view_mitra", "mitras.add_mitra", "mitras.change_mitra",
        "payments.view_payment", "payments.view_refund", "payments.add_refund", "payments.change_refund",
        "payments.view_paymentcallback",
        "runtime.view_runtimeconfig", "runtime.change_runtimeconfig",
        "accounts.view_user", "accounts.add_user", "accounts.change_user", "audit.view_auditentry",
        "promotions.view_campaign", "promotions.add_campaign", "promotions.change_campaign",
        "promotions.view_voucher", "promotions.add_voucher", "promotions.change_voucher",
        "promotions.view_redemption",
    ],
}  # fmt: skip


def ensure_staff_groups():
    """Create the groups and set exactly their permissions (idempotent)."""
    for name, permission_names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for dotted in permission_names:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
