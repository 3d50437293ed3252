"""`manage.py import_legacy DIR [--dry-run] [--strict]`: bring the Node backend's data across
(format and runbook: docs/cutover.md, DEPLOY.md "Cutover from the Node backend")."""

from django.core.management.base import BaseCommand, CommandError

from halobestie.legacy.importer import BATCH_SIZE, ImportAborted, LegacyImport


class Command(BaseCommand):
    help = (
        "Import the old backend's JSON Lines export (docs/cutover.md). Idempotent; --dry-run writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "directory", help="Directory holding clients.jsonl, besties.jsonl, … (docs/cutover.md)"
        )
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; write nothing.")
        parser.add_argument(
            "--strict", action="store_true", help="Write nothing when any row is refused (exit status 1)."
        )
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows per INSERT batch.")

    def handle(self, *args, directory, dry_run, strict, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        job = LegacyImport(directory, dry_run=dry_run, strict=strict, batch_size=batch_size)
        try:
            report = job.run()
        except ImportAborted as exc:
            for line in job.report.lines()[1:]:
                self.stdout.write(line)
            raise CommandError(str(exc))
        for line in report.lines():
            self.stdout.write(line)
