"""The report of one import run: per file the rows read, accepted, refused, already imported
and created, the checksums of the files and of the database, and the refused rows."""

from collections import Counter
from dataclasses import dataclass, field

from halobestie.legacy.formats import ENTITIES

REPORT_REFUSED_LIMIT = 1000
CHECKSUM_MODULUS = 1 << 64


@dataclass
class Checksum:
    rows: int = 0
    total: int = 0

    def add(self, value: int) -> None:
        self.rows += 1
        self.total = (self.total + value) % CHECKSUM_MODULUS

    def __str__(self):
        return f"{self.rows}:{self.total:016x}"


@dataclass
class EntityReport:
    read: int = 0
    accepted: int = 0
    refused: int = 0
    already_imported: int = 0
    created: int = 0
    file_checksum: Checksum = field(default_factory=Checksum)
    database_checksum: Checksum = field(default_factory=Checksum)


@dataclass
class ImportReport:
    dry_run: bool
    entities: dict = field(default_factory=lambda: {name: EntityReport() for name in ENTITIES})
    # (file name, line number, reason), the first REPORT_REFUSED_LIMIT of them.
    refused: list = field(default_factory=list)
    refused_reasons: Counter = field(default_factory=Counter)
    peak_rss_mib: float = 0.0

    @property
    def refused_total(self) -> int:
        return sum(entity.refused for entity in self.entities.values())

    @property
    def checksums_match(self) -> bool:
        return all(str(e.file_checksum) == str(e.database_checksum) for e in self.entities.values())

    def lines(self) -> list:
        out = [
            "DRY RUN: nothing written." if self.dry_run else "Import committed.",
            f"{'file':<16}{'read':>10}{'accepted':>10}{'refused':>9}{'already':>10}"
            f"{'created' if not self.dry_run else 'to create':>11}  checksum file / database",
        ]
        for name, entity in self.entities.items():
            created = entity.created if not self.dry_run else entity.accepted - entity.already_imported
            same = "=" if str(entity.file_checksum) == str(entity.database_checksum) else "≠"
            out.append(
                f"{name + '.jsonl':<16}{entity.read:>10}{entity.accepted:>10}{entity.refused:>9}"
                f"{entity.already_imported:>10}{created:>11}  {entity.file_checksum} {same} "
                f"{entity.database_checksum}"
            )
        out.append(f"refused rows: {self.refused_total}")
        for file_name, line, reason in self.refused:
            out.append(f"  {file_name}:{line}: {reason}")
        if self.refused_total > len(self.refused):
            out.append(f"  … and {self.refused_total - len(self.refused)} more; by reason:")
            for reason, count in self.refused_reasons.most_common():
                out.append(f"  {count:>8}  {reason}")
        out.append(
            "checksums: files and database match"
            if self.checksums_match
            else "checksums: files and database DIFFER (see ≠ above)"
        )
        out.append(f"peak memory (RSS): {self.peak_rss_mib:.0f} MiB")
        return out
