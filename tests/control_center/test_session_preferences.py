"""The control center shows each session's preferences, which are still held and which the
dispatcher let go, and a requested Bestie ("hanya dia": only this one)."""

from datetime import timedelta

from mitras.services import mitra_heartbeat, mitra_set_online
from sessions_app import lifecycle, matching


def test_it_shows_held_and_relaxed_preferences_on_the_session_page_and_in_the_list(
    internal_client, make_staff, make_client_user, make_mitra
):
    mitra = make_mitra(gender="male", languages=["id"], topics=["kerja"])
    mitra_set_online(mitra=mitra, is_online=True)
    session = lifecycle.session_create(
        client=make_client_user(), package_code="curhat-15", gender="female", topics=["keluarga"]
    )
    session = lifecycle.session_mark_paid(session_id=session.id)
    moment = session.matching_started_at + timedelta(seconds=60)  # the gender wish is let go
    mitra_heartbeat(mitra=mitra, now=moment)
    matching.queue_dispatch(now=moment)

    internal_client.force_login(make_staff("support"))
    page = internal_client.get(f"/admin/sessions_app/chatsession/{session.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<s>gender: female</s> (dilepas)" in html
    assert "<strong>topics: keluarga</strong> (dipegang)" in html
    listing = internal_client.get("/admin/sessions_app/chatsession/").content.decode()
    assert "<s>gender: female</s> (dilepas)" in listing


def test_it_shows_a_requested_bestie_and_only_this_one(
    internal_client, make_staff, make_client_user, make_mitra
):
    requested = make_mitra()
    session = lifecycle.session_create(
        client=make_client_user(), package_code="curhat-15", mitra_id=requested.id, allow_any_mitra=False
    )
    internal_client.force_login(make_staff("support"))
    html = internal_client.get(f"/admin/sessions_app/chatsession/{session.id}/change/").content.decode()
    assert f"Bestie diminta: #{requested.id}, hanya dia" in html
