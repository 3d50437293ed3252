"""Migrations follow the expand/contract rule (DEPLOY.md § 15): the previous release keeps
working on the new schema during a rolling deploy and after an image rollback.

A new column must be nullable or have a database default (`db_default=`): a plain `default=` is
dropped from the database once the column exists, so the previous release's INSERTs fail. A
data migration must say how to undo it. The migrations written before the first release are
exempt (nothing ran an older release against them).
"""

from django.db import migrations
from django.db.migrations.loader import MigrationLoader
from django.db.models import NOT_PROVIDED

PROJECT_APPS = {"accounts", "audit", "runtime", "legacy", "mitras", "sessions_app", "payments"}
BEFORE_FIRST_RELEASE = {
    ("accounts", "0001_initial"),
    ("accounts", "0002_otp_challenge"),
    ("accounts", "0003_mitra_login_failures"),
    ("audit", "0001_initial"),
    ("runtime", "0001_initial"),
    ("mitras", "0001_initial"),
    ("payments", "0001_initial"),
    ("sessions_app", "0001_initial"),
    ("sessions_app", "0002_extensions_and_refund_review"),
    ("sessions_app", "0003_staff_permissions"),
    ("sessions_app", "0004_realtime"),
    ("mitras", "0002_mitra_load"),
    ("sessions_app", "0005_backfill_mitra_load"),
    ("legacy", "0001_legacy_records"),
    ("sessions_app", "0006_fair_money_ledger_and_payouts"),
}


def breaking_operations(migration):
    for operation in migration.operations:
        if isinstance(operation, migrations.AddField):
            field = operation.field
            has_column = not field.many_to_many
            if has_column and not field.null and field.db_default is NOT_PROVIDED:
                yield f"AddField {operation.model_name}.{operation.name}: NOT NULL without db_default"
        elif isinstance(operation, migrations.RunPython) and not operation.reversible:
            yield "RunPython without reverse_code (use migrations.RunPython.noop if undoing needs nothing)"
        elif isinstance(operation, migrations.RunSQL) and not operation.reversible:
            yield "RunSQL without reverse_sql"


def test_it_keeps_every_new_migration_safe_for_the_previous_release():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    found = {}
    for (app, name), migration in loader.disk_migrations.items():
        if app in PROJECT_APPS and (app, name) not in BEFORE_FIRST_RELEASE:
            problems = list(breaking_operations(migration))
            if problems:
                found[f"{app}.{name}"] = problems
    assert found == {}


def test_it_names_only_migrations_that_exist_as_exempt():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    assert set(loader.disk_migrations) >= BEFORE_FIRST_RELEASE
