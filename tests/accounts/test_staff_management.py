"""Staff accounts without a superuser: admins create and change support and finance accounts
(audited), nobody below a superuser makes an admin; support hands a Bestie a one-time password
reset link (audited), finance cannot."""

import re

from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from halobestie.accounts.models import User
from halobestie.audit.models import AuditEntry

ADD_URL = "/admin/accounts/user/add/"


def change_url(user):
    return f"/admin/accounts/user/{user.pk}/change/"


def group_id(name):
    return Group.objects.get(name=name).pk


def accounts_snapshot():
    return sorted(
        (
            u.email,
            u.is_active,
            u.is_superuser,
            u.password,
            tuple(sorted(u.groups.values_list("name", flat=True))),
        )
        for u in User.objects.prefetch_related("groups")
    )


def test_it_lets_an_admin_create_a_support_account_with_its_group(internal_client, make_staff):
    admin = make_staff("admin")
    internal_client.force_login(admin)
    response = internal_client.post(
        ADD_URL,
        {
            "email": "dewi@halobestie.test", "display_name": "Dewi", "group": group_id("support"),
            "password1": "sandi-dewi-panjang-1", "password2": "sandi-dewi-panjang-1",
        },
    )  # fmt: skip
    assert response.status_code == 302
    dewi = User.objects.get(email="dewi@halobestie.test")
    assert (dewi.role, dewi.is_staff, dewi.is_superuser, dewi.display_name) == ("staff", True, False, "Dewi")
    assert list(dewi.groups.values_list("name", flat=True)) == ["support"]
    assert dewi.check_password("sandi-dewi-panjang-1")
    entry = AuditEntry.objects.get(action="staff_user_create")
    assert (entry.actor_id, entry.object_id, entry.before) == (admin.id, str(dewi.pk), None)
    assert entry.after["groups"] == ["support"]
    assert "password" not in str(entry.after).replace("password_changed", "")


def test_it_refuses_to_let_an_admin_make_an_admin_or_touch_one(internal_client, make_staff):
    admin, other_admin = make_staff("admin"), make_staff("admin")
    superuser = User.objects.create_superuser(email="root@halobestie.test", password="root-password-123")
    support = make_staff("support")
    internal_client.force_login(admin)
    before = accounts_snapshot()

    response = internal_client.post(
        ADD_URL,
        {
            "email": "naik@halobestie.test", "group": group_id("admin"),
            "password1": "sandi-naik-panjang-1", "password2": "sandi-naik-panjang-1",
        },
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the error on the group
    assert "group" in response.context["adminform"].form.errors
    for target in (other_admin, superuser, admin):
        assert (
            internal_client.post(change_url(target), {"email": target.email, "is_active": ""}).status_code
            == 403
        )
    # Giving the admin group to a support account: not a choice.
    response = internal_client.post(
        change_url(support), {"email": support.email, "is_active": "on", "groups": [group_id("admin")]}
    )
    assert response.status_code == 200
    assert accounts_snapshot() == before
    assert not AuditEntry.objects.exists()


def test_it_audits_every_change_of_a_staff_account(internal_client, make_staff):
    admin, support = make_staff("admin"), make_staff("support")
    internal_client.force_login(admin)

    response = internal_client.post(
        change_url(support),
        {"email": support.email, "display_name": "Sari", "groups": [group_id("finance")]},  # is_active off
    )
    assert response.status_code == 302
    support.refresh_from_db()
    assert (support.is_active, list(support.groups.values_list("name", flat=True))) == (False, ["finance"])
    change = AuditEntry.objects.get(action="staff_user_change")
    assert (change.before["is_active"], change.before["groups"]) == (True, ["support"])
    assert (change.after["is_active"], change.after["groups"], change.after["password_changed"]) == (
        False, ["finance"], False,
    )  # fmt: skip

    response = internal_client.post(
        f"/admin/accounts/user/{support.pk}/password/",
        {"password1": "sandi-baru-sari-99", "password2": "sandi-baru-sari-99"},
    )
    assert response.status_code == 302
    support.refresh_from_db()
    assert support.check_password("sandi-baru-sari-99")
    password = AuditEntry.objects.get(action="staff_password_set")
    assert (password.actor_id, password.after["password_changed"]) == (admin.id, True)
    assert support.password not in str(password.before) + str(password.after)


def test_it_gives_support_and_finance_no_hand_on_accounts(internal_client, make_staff):
    target = make_staff("support")
    target_before = User.objects.values().get(pk=target.pk)
    for group in ("support", "finance"):
        internal_client.force_login(make_staff(group))
        assert internal_client.get(ADD_URL).status_code == 403
        assert internal_client.post(change_url(target), {"email": target.email}).status_code == 403
        assert (
            internal_client.post(
                f"/admin/accounts/user/{target.pk}/password/",
                {"password1": "sandi-baru-x-1234", "password2": "sandi-baru-x-1234"},
            ).status_code
            == 403
        )
    assert User.objects.values().get(pk=target.pk) == target_before
    assert list(target.groups.values_list("name", flat=True)) == ["support"]
    assert not AuditEntry.objects.exists()


def login(phone, password):
    return APIClient().post("/api/v1/auth/mitra/login", {"phone": phone, "password": password}, format="json")


def test_it_lets_support_hand_a_bestie_a_one_time_password_reset_link(
    internal_client, make_staff, make_mitra
):
    mitra = make_mitra(display_name="Ayu", password="sandi-lama-ayu-1")
    refresh = login(mitra.user.phone, "sandi-lama-ayu-1").json()["refresh"]
    reset_url = f"/admin/staff/mitra/{mitra.pk}/password-reset/"

    internal_client.force_login(make_staff("finance"))
    assert internal_client.post(reset_url).status_code == 403
    assert not AuditEntry.objects.exists()

    support = make_staff("support")
    internal_client.force_login(support)
    assert (
        "mitra-password-reset-link"
        in internal_client.get(f"/admin/mitras/mitra/{mitra.pk}/change/").content.decode()
    )
    page = internal_client.post(reset_url).content.decode()
    link = re.search(r'id="reset-link" value="([^"]+)"', page).group(1)
    assert AuditEntry.objects.get(action="mitra_password_reset_link").actor_id == support.id
    path = link.split("://", 1)[1].split("/", 1)[1]

    public = Client()
    assert "Halo Ayu" in public.get(f"/{path}").content.decode()
    weak = public.post(f"/{path}", {"password": "123", "password_again": "123"})
    assert weak.status_code == 400
    assert (
        public.post(
            f"/{path}", {"password": "sandi-baru-ayu-77", "password_again": "sandi-baru-ayu-77"}
        ).status_code
        == 200
    )
    # Once: the link died with the old password.
    assert public.get(f"/{path}").status_code == 404
    assert (
        public.post(
            f"/{path}", {"password": "lagi-lagi-ayu-88", "password_again": "lagi-lagi-ayu-88"}
        ).status_code
        == 404
    )

    assert login(mitra.user.phone, "sandi-lama-ayu-1").status_code == 401
    assert login(mitra.user.phone, "sandi-baru-ayu-77").status_code == 200
    assert (
        APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json").status_code == 401
    )
    done = AuditEntry.objects.get(action="mitra_password_reset")
    assert (done.actor_id, done.object_id) == (mitra.user_id, str(mitra.user_id))


def test_it_answers_a_forged_reset_link_with_not_found(make_mitra):
    make_mitra()
    public = Client()
    for path in (
        "/mitra/password-reset/MQ/forged-token/",
        "/mitra/password-reset/%F0%9F/x/",
        "/mitra/password-reset/OTk5/x/",
    ):
        assert public.get(path).status_code == 404
        assert (
            public.post(
                path, {"password": "a-long-password-1", "password_again": "a-long-password-1"}
            ).status_code
            == 404
        )


def test_it_lets_only_one_of_two_simultaneous_resets_through(transactional_db, make_staff, make_mitra):
    import threading

    from django.db import connection

    from halobestie.accounts import staff
    from halobestie.errors import NotFound

    mitra = make_mitra(password="sandi-lama-ayu-1")
    link = staff.mitra_password_reset_link(actor=make_staff("support"), user=mitra.user)
    uidb64, token = link.rstrip("/").split("/")[-2:]
    barrier, outcomes = threading.Barrier(2), []

    def reset(password):
        try:
            barrier.wait()
            staff.mitra_password_reset_complete(uidb64=uidb64, token=token, password=password)
            outcomes.append(password)
        except NotFound:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=reset, args=(p,)) for p in ("pertama-panjang-11", "kedua-panjang-2222")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=lambda o: o == "refused")[1] == "refused"
    [winner] = [o for o in outcomes if o != "refused"]
    mitra.user.refresh_from_db()
    assert mitra.user.check_password(winner)
    assert AuditEntry.objects.filter(action="mitra_password_reset").count() == 1


def test_it_refuses_an_overlong_password_without_hashing_it(make_staff, make_mitra):
    mitra = make_mitra(password="sandi-lama-ayu-1")
    from halobestie.accounts import staff

    link = staff.mitra_password_reset_link(actor=make_staff("support"), user=mitra.user)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    response = Client().post(path, {"password": "x" * 1000, "password_again": "x" * 1000})
    assert response.status_code == 400
    assert "Paling banyak 128 karakter." in response.content.decode()
    mitra.user.refresh_from_db()
    assert mitra.user.check_password("sandi-lama-ayu-1")


def test_a_password_reset_refuses_the_access_tokens_issued_before_it(make_staff, make_mitra):
    # "Every session of the Bestie signed out": whoever holds a stolen access token too, not
    # only the refresh token (an access token lives AUTH_ACCESS_TOKEN_SECONDS).
    from halobestie.accounts import staff

    mitra = make_mitra(password="sandi-lama-ayu-1")
    access = login(mitra.user.phone, "sandi-lama-ayu-1").json()["access"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert api.get("/api/v1/mitra/bookings").status_code == 200
    mitra.user.refresh_from_db()  # the login changed last_login, which the link's token hashes
    link = staff.mitra_password_reset_link(actor=make_staff("support"), user=mitra.user)
    uidb64, token = link.rstrip("/").split("/")[-2:]
    staff.mitra_password_reset_complete(uidb64=uidb64, token=token, password="sandi-baru-ayu-77")
    assert api.get("/api/v1/mitra/bookings").status_code == 401
