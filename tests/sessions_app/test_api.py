"""The sessions REST API as the apps use it."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions_app import lifecycle
from sessions_app.models import ChatSession, Rating, Status
from tests.conftest import auth_client


def test_it_creates_a_session_with_an_invoice(make_client_user):
    client = make_client_user()
    response = auth_client(client).post("/api/v1/sessions", {"package": "curhat-30"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending_payment"
    assert body["price_idr"] == 25000 and body["duration_minutes"] == 30
    assert body["payment"]["kind"] == "session"
    assert body["payment"]["amount_idr"] == 25000
    assert body["payment"]["invoice_url"].startswith("http")
    assert body["queue_position"] is None


def test_it_refuses_an_unknown_package_with_a_field_error(make_client_user):
    client = make_client_user()
    response = auth_client(client).post("/api/v1/sessions", {"package": "gratis"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_package"
    assert "package" in response.json()["error"]["fields"]
    assert ChatSession.objects.count() == 0


def test_it_refuses_a_missing_package(make_client_user):
    response = auth_client(make_client_user()).post("/api/v1/sessions", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["package"]


def test_it_refuses_session_creation_to_a_mitra(make_mitra):
    mitra = make_mitra()
    response = auth_client(mitra.user).post("/api/v1/sessions", {"package": "curhat-30"}, format="json")
    assert response.status_code == 403
    assert ChatSession.objects.count() == 0


def test_it_hides_a_session_from_strangers(paid_session, make_client_user, make_mitra, online_mitra):
    online_mitra()
    session = paid_session()
    for stranger in (make_client_user(), make_mitra().user):
        response = auth_client(stranger).get(f"/api/v1/sessions/{session.id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "session_not_found"
    assert auth_client(session.client).get(f"/api/v1/sessions/{session.id}").status_code == 200


def test_it_shows_the_queue_position_to_waiting_clients(paid_session):
    first, second = paid_session(), paid_session()
    assert auth_client(first.client).get(f"/api/v1/sessions/{first.id}").json()["queue_position"] == 1
    assert auth_client(second.client).get(f"/api/v1/sessions/{second.id}").json()["queue_position"] == 2


def test_it_lets_the_offered_mitra_accept_and_both_list_it(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    mitra_api = auth_client(mitra.user)
    assert mitra_api.get(f"/api/v1/sessions/{session.id}").json()["status"] == "offered"
    response = mitra_api.post(f"/api/v1/sessions/{session.id}/accept")
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert [s["id"] for s in mitra_api.get("/api/v1/sessions").json()["results"]] == [str(session.id)]
    listed = auth_client(session.client).get("/api/v1/sessions?status=active").json()
    assert listed["count"] == 1


def test_it_refuses_an_unknown_status_filter(make_client_user):
    response = auth_client(make_client_user()).get("/api/v1/sessions?status=bogus")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_it_rates_once_after_the_end(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    client_api = auth_client(session.client)
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    early = client_api.post(f"/api/v1/sessions/{session.id}/rating", {"score": 5}, format="json")
    assert early.status_code == 409 and early.json()["error"]["code"] == "session_not_ended"
    lifecycle.session_end(session_id=session.id, actor=mitra.user)
    bad = client_api.post(f"/api/v1/sessions/{session.id}/rating", {"score": 6}, format="json")
    assert bad.status_code == 400 and "score" in bad.json()["error"]["fields"]
    long = client_api.post(
        f"/api/v1/sessions/{session.id}/rating", {"score": 4, "comment": "x" * 1001}, format="json"
    )
    assert long.status_code == 400 and "comment" in long.json()["error"]["fields"]
    ok = client_api.post(
        f"/api/v1/sessions/{session.id}/rating", {"score": 4, "comment": "Makasih!"}, format="json"
    )
    assert ok.status_code == 201
    mitra.refresh_from_db()
    assert (mitra.rating_count, mitra.rating_sum, mitra.rating_average) == (1, 4, 4.0)
    assert Rating.objects.count() == 1


def test_it_takes_a_report_from_either_side_once(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    mitra_api = auth_client(mitra.user)
    first = mitra_api.post(
        f"/api/v1/sessions/{session.id}/report", {"reason": "harassment", "detail": "kasar"}, format="json"
    )
    assert first.status_code == 201 and first.json()["status"] == "open"
    again = mitra_api.post(f"/api/v1/sessions/{session.id}/report", {"reason": "spam"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reported"
    bad = auth_client(session.client).post(
        f"/api/v1/sessions/{session.id}/report", {"reason": "??"}, format="json"
    )
    assert bad.status_code == 400


def test_it_shows_mitra_earnings_by_period(paid_session, online_mitra):
    mitra = online_mitra(capacity=3)
    for _ in range(2):
        session = paid_session(package="curhat-60")
        lifecycle.session_accept(session_id=session.id, mitra=mitra)
        lifecycle.session_end(session_id=session.id, actor=session.client)
    body = auth_client(mitra.user).get("/api/v1/mitra/earnings").json()
    assert {key: value for key, value in body.items() if key != "sessions"} == {
        "today_idr": 63000, "this_week_idr": 63000, "this_month_idr": 63000, "all_time_idr": 63000,
        "sessions_count": 2, "share_percent": 70,
    }  # fmt: skip
    assert body["sessions"]["count"] == 2


def test_it_lists_the_mitra_statement_per_session_with_reversals(paid_session, online_mitra, make_staff):
    from datetime import timedelta

    from rest_framework.fields import DateTimeField

    from sessions_app import settlement

    mitra = online_mitra(capacity=3)
    first = paid_session(package="curhat-60")
    lifecycle.session_accept(session_id=first.id, mitra=mitra)
    first.refresh_from_db()
    lifecycle.session_end(
        session_id=first.id, actor=first.client, now=first.accepted_at + timedelta(minutes=50)
    )
    second = paid_session(package="curhat-15")
    lifecycle.session_accept(session_id=second.id, mitra=mitra)
    second.refresh_from_db()
    lifecycle.session_end(
        session_id=second.id, actor=mitra.user, now=second.accepted_at + timedelta(minutes=5)
    )
    settlement.session_refund_by_staff(
        session_id=first.id, actor=make_staff("finance"), amount_idr=5000, note="gangguan"
    )
    api = auth_client(mitra.user)
    body = api.get("/api/v1/mitra/earnings?limit=1").json()
    # 45000 kept 40000 after the refund: 28000; 15000 with 10 of 15 minutes unserved: 5000 → 3500
    assert body["all_time_idr"] == 28000 + 3500 and body["sessions_count"] == 2
    assert body["sessions"]["count"] == 2 and body["sessions"]["previous"] is None
    assert body["sessions"]["next"].endswith("/api/v1/mitra/earnings?limit=1&offset=1")
    first.refresh_from_db()
    # newest end first: the 60-minute session ended 50 minutes after its start, the other after 5
    assert body["sessions"]["results"] == [
        {
            "session_id": str(first.id), "date": DateTimeField().to_representation(first.ended_at),
            "package": "curhat-60", "end_reason": "client_ended", "paid_minutes": 60, "minutes_served": 50,
            "gross_idr": 45000, "net_idr": 40000, "share_percent": 70, "earned_idr": 31500,
            "reversals_idr": -3500, "total_idr": 28000,
        }
    ]  # fmt: skip
    older = api.get("/api/v1/mitra/earnings?limit=1&offset=1").json()["sessions"]["results"]
    assert [
        (r["session_id"], r["end_reason"], r["minutes_served"], r["gross_idr"], r["net_idr"], r["earned_idr"],
         r["reversals_idr"], r["total_idr"]) for r in older
    ] == [(str(second.id), "mitra_ended", 5, 15000, 5000, 3500, 0, 3500)]  # fmt: skip
    bad = api.get("/api/v1/mitra/earnings?limit=0")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_it_pages_the_message_history(paid_session, online_mitra):
    mitra = online_mitra()
    session = paid_session()
    lifecycle.session_accept(session_id=session.id, mitra=mitra)
    response = auth_client(session.client).get(f"/api/v1/sessions/{session.id}/messages?after_seq=0&limit=10")
    assert response.json() == {"results": [], "has_more": False}
    bad = auth_client(session.client).get(f"/api/v1/sessions/{session.id}/messages?limit=0")
    assert bad.status_code == 400


def test_it_extends_only_active_sessions(paid_session, online_mitra):
    online_mitra()
    session = paid_session()
    assert session.status == Status.OFFERED
    response = auth_client(session.client).post(
        f"/api/v1/sessions/{session.id}/extend", {"package": "curhat-15"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_active"


def test_it_hides_the_chat_from_a_mitra_who_declined(paid_session, online_mitra):
    first = online_mitra()
    session = paid_session()
    second = online_mitra()
    declined = auth_client(first.user).post(f"/api/v1/sessions/{session.id}/decline")
    assert declined.status_code == 200
    assert (declined.json()["status"], declined.json()["mitra"]) == ("matching", None)
    session.refresh_from_db()
    assert (session.status, session.mitra_id) == (Status.OFFERED, second.id)  # the next Bestie
    lifecycle.session_accept(session_id=session.id, mitra=second)
    for path in ("", "/messages"):
        response = auth_client(first.user).get(f"/api/v1/sessions/{session.id}{path}")
        assert response.status_code == 404, path
    assert auth_client(second.user).get(f"/api/v1/sessions/{session.id}/messages").status_code == 200


def test_it_lists_sessions_in_the_same_number_of_queries_for_1_and_for_50(make_client_user, online_mitra):
    def client_with_sessions(count):
        client = make_client_user()
        for _ in range(count - 1):
            session = lifecycle.session_create(client=client, package_code="curhat-15")
            lifecycle.session_end(session_id=session.id, actor=client)
        session = lifecycle.session_create(client=client, package_code="curhat-15")
        lifecycle.session_mark_paid(session_id=session.id)  # waiting in the queue: a queue position
        return client

    def queries_for(client):
        api = auth_client(client)
        with CaptureQueriesContext(connection) as captured:
            response = api.get("/api/v1/sessions?limit=50")
        assert response.status_code == 200
        return len(captured), response.json()["results"]

    waiting = make_client_user()
    lifecycle.session_mark_paid(
        session_id=lifecycle.session_create(client=waiting, package_code="curhat-15").id
    )  # someone ahead in the queue
    one, one_rows = queries_for(client_with_sessions(1))
    fifty, fifty_rows = queries_for(client_with_sessions(50))
    assert (len(one_rows), len(fifty_rows)) == (1, 50)
    assert one_rows[0]["queue_position"] == 2 and fifty_rows[0]["queue_position"] == 3
    assert [row["payment"]["kind"] for row in fifty_rows] == ["session"] * 50
    assert fifty_rows[1]["queue_position"] is None  # cancelled
    assert one == fifty
