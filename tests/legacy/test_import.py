"""manage.py import_legacy: the generated export with bad rows, imported twice, dry run, strict."""

import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from halobestie.accounts.models import Device, User
from halobestie.legacy.importer import LegacyImport
from halobestie.legacy.models import LegacyRecord
from mitras.models import Mitra
from payments.models import Payment, Refund
from sessions_app.models import ChatSession, EarningsEntry, Message, Rating, Report

MODELS = (
    User,
    Mitra,
    Device,
    ChatSession,
    Message,
    Payment,
    Refund,
    EarningsEntry,
    Rating,
    Report,
    LegacyRecord,
)

REFUSED = [
    ("clients.jsonl", 21, "phone: not a valid Indonesian mobile number"),
    ("clients.jsonl", 22, "id '1' appears twice in clients.jsonl"),
    ("clients.jsonl", 23, "phone +6281200000001 already used by clients id '1'"),
    ("clients.jsonl", 24, "created_at: time without a UTC offset"),
    ("clients.jsonl", 25, "not valid JSON (UTF-8)"),
    ("besties.jsonl", 5, "password_hash: not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters)"),
    ("devices.jsonl", 21, "owner_id '21': no such client (missing or refused)"),
    ("sessions.jsonl", 31, "status: 'active' is an open session (only ended sessions are imported)"),
    ("sessions.jsonl", 32, "client_id '21': no such client (missing or refused)"),
    ("messages.jsonl", 151, "session_id 's31': no such session (missing or refused)"),
    ("messages.jsonl", 152, "seq 7: expected 6 (seq runs 1, 2, 3 … per session, no gaps)"),
    (
        "messages.jsonl",
        153,
        "session 's1': its messages are not on consecutive lines (sort the file by session_id, seq)",
    ),
    (
        "payments.jsonl",
        31,
        "status: 'pending' payment (not final; let it expire or settle before the export)",
    ),
    ("payments.jsonl", 32, "external_id 'hb-node-1' appears twice in payments.jsonl"),
    ("refunds.jsonl", 4, "refunds of payment 'p10' would exceed its 15000 rupiah"),
    ("earnings.jsonl", 31, "session 's1' already has an earnings row"),
    ("ratings.jsonl", 16, "score: 6 outside 1..5"),
    ("reports.jsonl", 5, "session 's7' already has a report by its client"),
]
# file → (lines read, accepted)
COUNTS = {
    "clients": (25, 20),
    "besties": (5, 4),
    "devices": (21, 20),
    "sessions": (32, 30),
    "messages": (153, 150),
    "payments": (32, 30),
    "refunds": (4, 3),
    "earnings": (31, 30),
    "ratings": (16, 15),
    "reports": (5, 4),
}


def _snapshot():
    """Every row of every table the import writes, in a stable order."""
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in MODELS}


def _counts(report):
    return {name: (e.read, e.accepted) for name, e in report.entities.items()}


def _import(directory, *args):
    out = io.StringIO()
    call_command("import_legacy", str(directory), *args, stdout=out)
    return out.getvalue()


def test_it_imports_the_export_twice_into_the_same_database(export_dir):
    first = LegacyImport(export_dir).run()
    after_first = _snapshot()
    second = LegacyImport(export_dir).run()

    assert _snapshot() == after_first
    assert _counts(first) == _counts(second) == COUNTS
    assert {n: e.created for n, e in first.entities.items()} == {n: a for n, (_, a) in COUNTS.items()}
    assert {n: e.created for n, e in second.entities.items()} == dict.fromkeys(COUNTS, 0)
    assert {n: e.already_imported for n, e in second.entities.items()} == {
        n: a for n, (_, a) in COUNTS.items()
    }
    assert first.checksums_match and second.checksums_match
    assert [str(e.database_checksum) for e in first.entities.values()] == [
        str(e.database_checksum) for e in second.entities.values()
    ]
    assert [str(e.file_checksum) for e in first.entities.values()] == [
        str(e.database_checksum) for e in first.entities.values()
    ]
    assert (User.objects.filter(role="client").count(), Mitra.objects.count(), Message.objects.count()) == (
        20,
        4,
        150,
    )


def test_it_reports_a_dry_run_with_every_refused_row_and_writes_nothing(export_dir):
    report = LegacyImport(export_dir, dry_run=True).run()
    printed = _import(export_dir, "--dry-run")

    assert report.refused == REFUSED
    assert _counts(report) == COUNTS
    assert {n: e.already_imported for n, e in report.entities.items()} == dict.fromkeys(COUNTS, 0)
    assert all(model.objects.count() == 0 for model in MODELS)
    lines = printed.splitlines()
    assert lines[0] == "DRY RUN: nothing written."
    assert "refused rows: 18" in lines
    assert [line.strip() for line in lines if line.startswith("  ") and ".jsonl:" in line] == [
        f"{name}:{number}: {reason}" for name, number, reason in REFUSED
    ]
    assert "checksums: files and database DIFFER (see ≠ above)" in lines


def test_it_prints_matching_checksums_on_a_dry_run_after_the_import(export_dir):
    _import(export_dir)

    lines = _import(export_dir, "--dry-run").splitlines()

    assert "checksums: files and database match" in lines
    messages = next(line for line in lines if line.startswith("messages.jsonl"))
    assert messages.split()[:6] == ["messages.jsonl", "153", "150", "3", "150", "0"]


def test_it_writes_nothing_with_strict_when_a_row_is_refused(export_dir, clean_export_dir):
    with pytest.raises(CommandError, match="18 rows refused and --strict: nothing written"):
        _import(export_dir, "--strict")
    assert all(model.objects.count() == 0 for model in MODELS)

    _import(clean_export_dir, "--strict")
    assert User.objects.count() == 5


def test_it_normalises_phones_and_times_and_keeps_each_sessions_seq(export_dir):
    LegacyImport(export_dir).run()

    client = User.objects.get(pk=LegacyRecord.objects.get(entity="client", legacy_id="3").object_id)
    session = ChatSession.objects.get(pk=LegacyRecord.objects.get(entity="session", legacy_id="s1").object_id)
    assert client.phone == "+6281200000003"  # "081200000003" in the file
    assert client.created_at == datetime(2026, 1, 5, 9, 3, tzinfo=UTC)  # "16:03:00.000+07:00"
    assert session.status == "ended" and session.last_seq == 5
    assert list(session.messages.order_by("seq").values_list("seq", "sender_id", "kind")) == [
        (1, session.client_id, "text"),
        (2, session.mitra.user_id, "text"),
        (3, session.client_id, "text"),
        (4, session.mitra.user_id, "text"),
        (5, session.client_id, "text"),
    ]
    assert session.created_at == datetime(2026, 1, 6, 9, 30, tzinfo=UTC)
    assert session.payments.get().external_id == "hb-node-1"


def test_it_brings_besties_in_offline_with_their_ratings_counted(export_dir):
    LegacyImport(export_dir).run()

    bestie = Mitra.objects.get(user__phone="+6281100000002")
    assert (bestie.is_online, bestie.online_since, bestie.deactivated_at) == (False, None, None)
    assert (bestie.rating_count, bestie.rating_sum) == (
        Rating.objects.filter(mitra=bestie).count(),
        sum(Rating.objects.filter(mitra=bestie).values_list("score", flat=True)),
    )
    assert bestie.rating_count == 8  # sessions 2, 6, 10 … 30
    assert bestie.user.password.startswith("bcrypt$$2b$04$")
    assert Refund.objects.filter(status="succeeded").count() == 3


def test_it_adds_only_what_is_new_when_the_export_grows(clean_export_dir):
    LegacyImport(clean_export_dir).run()
    with (clean_export_dir / "messages.jsonl").open("a") as file:
        file.write('{"session_id": "s2", "seq": 4, "sender": "system", "body": "Sesi selesai.", ')
        file.write('"created_at": "2026-01-06T10:20:00Z"}\n')

    report = LegacyImport(clean_export_dir).run()

    session = ChatSession.objects.get(pk=LegacyRecord.objects.get(entity="session", legacy_id="s2").object_id)
    assert (report.entities["messages"].created, report.entities["messages"].already_imported) == (1, 6)
    assert session.last_seq == 4
    assert session.messages.get(seq=4).sender_id is None
    assert report.checksums_match


def test_it_refuses_a_phone_that_already_belongs_to_an_account_of_ours(clean_export_dir, make_client_user):
    make_client_user(phone="+6281200000002")

    report = LegacyImport(clean_export_dir, dry_run=True).run()

    assert report.refused == [
        ("clients.jsonl", 2, "phone +6281200000002 already belongs to another account in this database"),
        ("devices.jsonl", 2, "owner_id '2': no such client (missing or refused)"),
        ("sessions.jsonl", 2, "client_id '2': no such client (missing or refused)"),
        ("messages.jsonl", 4, "session_id 's2': no such session (missing or refused)"),
        ("messages.jsonl", 5, "session_id 's2': no such session (missing or refused)"),
        ("messages.jsonl", 6, "session_id 's2': no such session (missing or refused)"),
        ("payments.jsonl", 2, "session_id 's2': no such session (missing or refused)"),
        ("earnings.jsonl", 2, "session_id 's2': no such session (missing or refused)"),
        ("ratings.jsonl", 1, "session_id 's2': no such session (missing or refused)"),
    ]
