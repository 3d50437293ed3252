"""`manage.py import_legacy DIR`: the Node backend's data, from JSON Lines files, into ours.

Two passes over the files, each streamed line by line (never a whole file in memory):
1. Validate every row (formats.py for the row alone; here what needs other rows: references,
   duplicates, per-session seq, phones or tokens already taken in our database). A refused row
   is reported with its file, line and reason and is not imported, nor is anything that depends
   on it. Nothing is written in this pass.
2. Write, in one transaction (all or nothing) under an advisory lock, in batches
   (`bulk_create`): rows already imported (their legacy id is in LegacyRecord; for messages, the
   seq is not above the session's) are left alone, so a second run writes nothing.
Then the checksums of what the files hold and of what the database holds (checksums.py) go
side by side into the report (report.py). What stays in memory grows with users and sessions
(a few hundred bytes each), not with messages.
"""

import json
import resource
import uuid
from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from halobestie.accounts.models import Device, Role, User
from halobestie.db.locks import advisory_xact_lock_text
from halobestie.legacy.checksums import database_checksums, row_hash
from halobestie.legacy.formats import ENTITIES, PARSERS, REFUND_COUNTING_STATUSES, Refused
from halobestie.legacy.models import LegacyEntity, LegacyRecord
from halobestie.legacy.report import REPORT_REFUSED_LIMIT, ImportReport
from mitras import mirror
from mitras.models import Mitra
from payments.models import Payment, Refund
from sessions_app.models import ChatSession, EarningsEntry, Message, MessageKind, Rating, Report
from sessions_app.payouts import period_of

BATCH_SIZE = 2000
MAX_LINE_BYTES = 1 << 20
# The LegacyRecord entity of each file (messages have none: a message is session + seq).
RECORD_ENTITY = {
    "clients": LegacyEntity.CLIENT,
    "besties": LegacyEntity.BESTIE,
    "devices": LegacyEntity.DEVICE,
    "sessions": LegacyEntity.SESSION,
    "payments": LegacyEntity.PAYMENT,
    "refunds": LegacyEntity.REFUND,
    "earnings": LegacyEntity.EARNING,
    "ratings": LegacyEntity.RATING,
    "reports": LegacyEntity.REPORT,
}
REFUND_KEY_NAMESPACE = uuid.UUID("6f0c9a52-2d47-4d35-9a43-3c1c2e0b26a1")


class ImportAborted(Exception):
    """The import wrote nothing (`--strict` with refused rows, or a file that cannot be read)."""


class LineSet:
    """A set of line numbers as a bitmap: a million refused lines cost 125 kB."""

    def __init__(self):
        self._bits = bytearray()

    def add(self, number: int) -> None:
        index = number >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index - len(self._bits) + 1024))
        self._bits[index] |= 1 << (number & 7)

    def __contains__(self, number: int) -> bool:
        index = number >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (number & 7)))


class SessionState:
    """What the importer keeps per session (never per message)."""

    __slots__ = (
        "client_id",
        "bestie_id",
        "status",
        "package_code",
        "next_seq",
        "database_last_seq",
        "imported_before",
        "messages_done",
        "has_rating",
        "has_earning",
        "reporters",
    )

    def __init__(self, record, database_last_seq, *, imported_before):
        self.client_id = record["client_id"]
        self.bestie_id = record["bestie_id"]
        self.status = record["status"]
        self.package_code = record["package_code"]
        self.next_seq = 1
        self.database_last_seq = database_last_seq
        self.imported_before = imported_before
        self.messages_done = False
        self.has_rating = False
        self.has_earning = False
        self.reporters = ()


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LegacyImport:
    """One run over a directory of files. `run()` returns the report."""

    def __init__(self, directory, *, dry_run=False, strict=False, batch_size=BATCH_SIZE):
        self.directory = Path(directory)
        self.dry_run = dry_run
        self.strict = strict
        self.batch_size = batch_size
        self.report = ImportReport(dry_run=dry_run)
        self.refused_lines = {name: LineSet() for name in ENTITIES}

    # Reading -----------------------------------------------------------------------------------

    def _rows(self, name):
        """(line number, record or Refused) for each non-blank line of `<name>.jsonl`."""
        path = self.directory / f"{name}.jsonl"
        if not path.exists():
            return
        with path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                if not raw.strip():
                    continue
                if len(raw) > MAX_LINE_BYTES:
                    yield number, Refused(f"line longer than {MAX_LINE_BYTES} bytes")
                    continue
                try:
                    row = json.loads(raw)
                except (UnicodeDecodeError, ValueError):
                    yield number, Refused("not valid JSON (UTF-8)")
                    continue
                if not isinstance(row, dict):
                    yield number, Refused("not a JSON object")
                    continue
                try:
                    yield number, PARSERS[name](row)
                except Refused as exc:
                    yield number, exc

    def _refuse(self, name, number, reason) -> None:
        entity = self.report.entities[name]
        entity.refused += 1
        self.refused_lines[name].add(number)
        self.report.refused_reasons[reason if len(reason) < 80 else reason[:77] + "…"] += 1
        if len(self.report.refused) < REPORT_REFUSED_LIMIT:
            self.report.refused.append((f"{name}.jsonl", number, reason))

    # Run ---------------------------------------------------------------------------------------

    def run(self) -> ImportReport:
        missing = not any((self.directory / f"{name}.jsonl").exists() for name in ENTITIES)
        if not self.directory.is_dir() or missing:
            raise ImportAborted(f"{self.directory}: no *.jsonl files of the cutover format here")
        if self.dry_run:
            self._load_imported()
            self._validate()
            database_checksums(imported=self.imported, entities=self.report.entities)
        else:
            with transaction.atomic():
                advisory_xact_lock_text("legacy-import")  # two runs never interleave
                self._load_imported()
                self._validate()
                if self.strict and self.report.refused_total:
                    raise ImportAborted(
                        f"{self.report.refused_total} rows refused and --strict: nothing written"
                    )
                self._write()
                database_checksums(imported=self.imported, entities=self.report.entities)
            self._reseed_mirror()
        self.report.peak_rss_mib = _peak_rss_mib()
        return self.report

    def _load_imported(self) -> None:
        """Legacy id → our primary key (as text), per entity, of every row imported before."""
        self.imported = {entity: {} for entity in LegacyEntity.values}
        rows = LegacyRecord.objects.values_list("entity", "legacy_id", "object_id")
        for entity, legacy_id, object_id in rows.iterator(chunk_size=10_000):
            self.imported[entity][legacy_id] = object_id
        self.database_last_seq = {}
        session_ids = list(self.imported[LegacyEntity.SESSION].values())
        for chunk in _chunks(session_ids, 10_000):
            for pk, last_seq in ChatSession.objects.filter(pk__in=chunk).values_list("pk", "last_seq"):
                self.database_last_seq[str(pk)] = last_seq

    # Pass 1: validate ----------------------------------------------------------------------------

    def _validate(self) -> None:
        self.clients = set()
        self.besties = set()
        self.phones = {}
        self.device_tokens = set()
        self.sessions = {}
        self.payments = {}
        self.external_ids = set()
        self.seen = {
            name: set() for name in ("devices", "payments", "refunds", "earnings", "ratings", "reports")
        }
        self._message_session = None
        for name in ENTITIES:
            entity = self.report.entities[name]
            check = getattr(self, f"_check_{name}")
            for chunk in _chunks(self._rows(name), self.batch_size):
                taken = self._taken_in_database(name, [r for _, r in chunk if not isinstance(r, Refused)])
                for number, record in chunk:
                    entity.read += 1
                    try:
                        if isinstance(record, Refused):
                            raise record
                        already = check(record, taken)
                    except Refused as exc:
                        self._refuse(name, number, str(exc))
                        continue
                    entity.accepted += 1
                    entity.already_imported += bool(already)
                    entity.file_checksum.add(row_hash(name, record))

    def _taken_in_database(self, name, records) -> dict:
        """For a batch: the unique values (phone, FCM token, external id) already in our database,
        with the primary key of the row that holds each."""
        if name in ("clients", "besties"):
            phones = [r["phone"] for r in records if r["phone"]]
            return {p: str(pk) for p, pk in User.objects.filter(phone__in=phones).values_list("phone", "pk")}
        if name == "devices":
            tokens = [r["token"] for r in records]
            return {
                t: str(pk) for t, pk in Device.objects.filter(token__in=tokens).values_list("token", "pk")
            }
        if name == "payments":
            ids = [r["external_id"] for r in records]
            rows = Payment.objects.filter(external_id__in=ids).values_list("external_id", "pk")
            return {e: str(pk) for e, pk in rows}
        return {}

    def _check_person(self, name, record, taken, known) -> bool:
        entity = RECORD_ENTITY[name]
        legacy_id, number = record["id"], record["phone"]
        if legacy_id in known:
            raise Refused(f"id {legacy_id!r} appears twice in {name}.jsonl")
        mine = self.imported[entity].get(legacy_id)
        if number is not None:
            if number in self.phones:
                raise Refused(f"phone {number} already used by {self.phones[number]}")
            if number in taken and taken[number] != mine:
                raise Refused(f"phone {number} already belongs to another account in this database")
            self.phones[number] = f"{name} id {legacy_id!r}"
        known.add(legacy_id)
        return mine is not None

    def _check_clients(self, record, taken) -> bool:
        return self._check_person("clients", record, taken, self.clients)

    def _check_besties(self, record, taken) -> bool:
        return self._check_person("besties", record, taken, self.besties)

    def _seen_once(self, name, legacy_id) -> bool:
        """Refuses a second row with the same id; True when the row was imported before."""
        if legacy_id in self.seen[name]:
            raise Refused(f"id {legacy_id!r} appears twice in {name}.jsonl")
        self.seen[name].add(legacy_id)
        return legacy_id in self.imported[RECORD_ENTITY[name]]

    def _check_devices(self, record, taken) -> bool:
        owners = self.clients if record["owner"] == "client" else self.besties
        if record["owner_id"] not in owners:
            raise Refused(f"owner_id {record['owner_id']!r}: no such {record['owner']} (missing or refused)")
        if record["token"] in self.device_tokens:
            raise Refused("token appears twice in devices.jsonl")
        already = self._seen_once("devices", record["id"])
        mine = self.imported[LegacyEntity.DEVICE].get(record["id"])
        if record["token"] in taken and taken[record["token"]] != mine:
            raise Refused("token already registered by another account in this database")
        self.device_tokens.add(record["token"])
        return already

    def _check_sessions(self, record, taken) -> bool:
        legacy_id = record["id"]
        if legacy_id in self.sessions:
            raise Refused(f"id {legacy_id!r} appears twice in sessions.jsonl")
        if record["client_id"] not in self.clients:
            raise Refused(f"client_id {record['client_id']!r}: no such client (missing or refused)")
        if record["bestie_id"] is not None and record["bestie_id"] not in self.besties:
            raise Refused(f"bestie_id {record['bestie_id']!r}: no such bestie (missing or refused)")
        mine = self.imported[LegacyEntity.SESSION].get(legacy_id)
        self.sessions[legacy_id] = SessionState(
            record, self.database_last_seq.get(mine, 0), imported_before=mine is not None
        )
        return mine is not None

    def _check_messages(self, record, taken) -> bool:
        session_id = record["session_id"]
        session = self.sessions.get(session_id)
        if session is None:
            raise Refused(f"session_id {session_id!r}: no such session (missing or refused)")
        if session_id != self._message_session:
            if self._message_session is not None:
                self.sessions[self._message_session].messages_done = True
            self._message_session = session_id
            if session.messages_done:
                raise Refused(
                    f"session {session_id!r}: its messages are not on consecutive lines "
                    "(sort the file by session_id, seq)"
                )
        if record["seq"] != session.next_seq:
            raise Refused(
                f"seq {record['seq']}: expected {session.next_seq} (seq runs 1, 2, 3 … per session, no gaps)"
            )
        if record["sender"] == "bestie" and session.bestie_id is None:
            raise Refused("sender 'bestie' in a session without a bestie")
        session.next_seq += 1
        return record["seq"] <= session.database_last_seq

    def _session_for(self, record, *, served=False) -> SessionState:
        session = self.sessions.get(record["session_id"])
        if session is None:
            raise Refused(f"session_id {record['session_id']!r}: no such session (missing or refused)")
        if served and (session.status != "ended" or session.bestie_id is None):
            raise Refused(
                f"session {record['session_id']!r} was not served by a bestie (status {session.status})"
            )
        return session

    def _check_payments(self, record, taken) -> bool:
        self._session_for(record)
        if record["external_id"] in self.external_ids:
            raise Refused(f"external_id {record['external_id']!r} appears twice in payments.jsonl")
        already = self._seen_once("payments", record["id"])
        mine = self.imported[LegacyEntity.PAYMENT].get(record["id"])
        if record["external_id"] in taken and taken[record["external_id"]] != mine:
            raise Refused(f"external_id {record['external_id']!r} already used by a payment in this database")
        self.external_ids.add(record["external_id"])
        self.payments[record["id"]] = [record["status"], record["amount_idr"], 0]
        return already

    def _check_refunds(self, record, taken) -> bool:
        payment = self.payments.get(record["payment_id"])
        if payment is None:
            raise Refused(f"payment_id {record['payment_id']!r}: no such payment (missing or refused)")
        status, amount, refunded = payment
        if status != "paid":
            raise Refused(f"payment {record['payment_id']!r} was not paid (status {status})")
        counts = record["status"] in REFUND_COUNTING_STATUSES
        if counts and refunded + record["amount_idr"] > amount:
            raise Refused(f"refunds of payment {record['payment_id']!r} would exceed its {amount} rupiah")
        already = self._seen_once("refunds", record["id"])
        if counts:
            payment[2] += record["amount_idr"]
        return already

    def _check_earnings(self, record, taken) -> bool:
        session = self._session_for(record, served=True)
        if session.has_earning:
            raise Refused(f"session {record['session_id']!r} already has an earnings row")
        already = self._seen_once("earnings", record["id"])
        session.has_earning = True
        return already

    def _check_ratings(self, record, taken) -> bool:
        session = self._session_for(record, served=True)
        if session.has_rating:
            raise Refused(f"session {record['session_id']!r} already has a rating")
        already = self._seen_once("ratings", record["id"])
        session.has_rating = True
        return already

    def _check_reports(self, record, taken) -> bool:
        session = self._session_for(record)
        if record["reporter"] == "bestie" and session.bestie_id is None:
            raise Refused("reporter 'bestie' in a session without a bestie")
        if record["reporter"] in session.reporters:
            raise Refused(
                f"session {record['session_id']!r} already has a report by its {record['reporter']}"
            )
        already = self._seen_once("reports", record["id"])
        session.reporters = (*session.reporters, record["reporter"])
        return already

    # Pass 2: write -------------------------------------------------------------------------------

    def _new_records(self, name):
        """The accepted records of a file not imported before, in batches."""
        refused = self.refused_lines[name]
        imported = self.imported.get(RECORD_ENTITY.get(name), {})
        fresh = (
            record
            for number, record in self._rows(name)
            if number not in refused and not isinstance(record, Refused) and record["id"] not in imported
        )
        return _chunks(fresh, self.batch_size)

    def _remember(self, name, pairs) -> None:
        """Record (legacy id, our row) pairs just created, in LegacyRecord and in memory."""
        entity = RECORD_ENTITY[name]
        LegacyRecord.objects.bulk_create(
            [LegacyRecord(entity=entity, legacy_id=legacy_id, object_id=str(pk)) for legacy_id, pk in pairs]
        )
        self.imported[entity].update((legacy_id, str(pk)) for legacy_id, pk in pairs)
        self.report.entities[name].created += len(pairs)

    @staticmethod
    def _create(model, objects, created_at):
        """bulk_create, then the legacy created_at (auto_now_add stamps now on insert)."""
        model.objects.bulk_create(objects)
        for obj, moment in zip(objects, created_at, strict=True):
            obj.created_at = moment
        model.objects.bulk_update(objects, ["created_at"])
        return objects

    def _write(self) -> None:
        self._load_targets()
        for name in ENTITIES:
            getattr(self, f"_write_{name}")()

    def _load_targets(self) -> None:
        """Our keys for the rows imported before, which the new rows refer to."""
        self.user_pk = {}  # ("client"|"bestie", legacy id) → user pk
        self.mitra_pk = {}  # bestie legacy id → mitra pk
        for legacy_id, pk in self.imported[LegacyEntity.CLIENT].items():
            self.user_pk["client", legacy_id] = int(pk)
        bestie_users = {int(pk): legacy_id for legacy_id, pk in self.imported[LegacyEntity.BESTIE].items()}
        for chunk in _chunks(list(bestie_users), 10_000):
            for user_id, mitra_id in Mitra.objects.filter(user_id__in=chunk).values_list("user_id", "pk"):
                self.user_pk["bestie", bestie_users[user_id]] = user_id
                self.mitra_pk[bestie_users[user_id]] = mitra_id
        self.session_row = {}  # session legacy id → (session pk, client user pk, mitra pk, mitra user pk)
        session_ids = {
            uuid.UUID(pk): legacy_id for legacy_id, pk in self.imported[LegacyEntity.SESSION].items()
        }
        for chunk in _chunks(list(session_ids), 10_000):
            rows = ChatSession.objects.filter(pk__in=chunk).values_list(
                "pk", "client_id", "mitra_id", "mitra__user_id"
            )
            for pk, client_id, mitra_id, mitra_user_id in rows:
                self.session_row[session_ids[pk]] = (pk, client_id, mitra_id, mitra_user_id)
        self.payment_row = {}  # payment legacy id → (payment pk, session pk)
        payment_ids = {
            uuid.UUID(pk): legacy_id for legacy_id, pk in self.imported[LegacyEntity.PAYMENT].items()
        }
        for chunk in _chunks(list(payment_ids), 10_000):
            for pk, session_id in Payment.objects.filter(pk__in=chunk).values_list("pk", "session_id"):
                self.payment_row[payment_ids[pk]] = (pk, session_id)

    def _write_clients(self) -> None:
        for batch in self._new_records("clients"):
            users = [
                User(
                    phone=r["phone"],
                    role=Role.CLIENT,
                    display_name=r["display_name"],
                    is_active=r["is_active"],
                    deleted_at=r["deleted_at"],
                    password=make_password(None),
                )
                for r in batch
            ]
            self._create(User, users, [r["created_at"] for r in batch])
            pairs = [(r["id"], user.pk) for r, user in zip(batch, users, strict=True)]
            self._remember("clients", pairs)
            self.user_pk.update((("client", legacy_id), pk) for legacy_id, pk in pairs)

    def _write_besties(self) -> None:
        for batch in self._new_records("besties"):
            users = [
                User(
                    phone=r["phone"], role=Role.MITRA, display_name=r["display_name"], password=r["password"]
                )
                for r in batch
            ]
            self._create(User, users, [r["created_at"] for r in batch])
            mitras = [
                Mitra(
                    user=user,
                    display_name=r["display_name"],
                    bio=r["bio"],
                    avatar_url=r["avatar_url"],
                    topics=r["topics"],
                    languages=r["languages"],
                    gender=r["gender"],
                    capacity=r["capacity"],
                    # Imported Besties come in offline: they go online from the new app.
                    is_online=False,
                    deactivated_at=r["deactivated_at"],
                )
                for r, user in zip(batch, users, strict=True)
            ]
            self._create(Mitra, mitras, [r["created_at"] for r in batch])
            self._remember("besties", [(r["id"], user.pk) for r, user in zip(batch, users, strict=True)])
            for r, user, mitra in zip(batch, users, mitras, strict=True):
                self.user_pk["bestie", r["id"]] = user.pk
                self.mitra_pk[r["id"]] = mitra.pk

    def _write_devices(self) -> None:
        for batch in self._new_records("devices"):
            devices = [
                Device(
                    user_id=self.user_pk[r["owner"], r["owner_id"]], token=r["token"], platform=r["platform"]
                )
                for r in batch
            ]
            self._create(Device, devices, [r["created_at"] for r in batch])
            self._remember("devices", [(r["id"], d.pk) for r, d in zip(batch, devices, strict=True)])

    def _write_sessions(self) -> None:
        for batch in self._new_records("sessions"):
            sessions = []
            for r in batch:
                state = self.sessions[r["id"]]
                sessions.append(
                    ChatSession(
                        client_id=self.user_pk["client", r["client_id"]],
                        mitra_id=self.mitra_pk[r["bestie_id"]] if r["bestie_id"] else None,
                        package_code=r["package_code"],
                        duration_seconds=r["duration_seconds"],
                        price_idr=r["price_idr"],
                        status=r["status"],
                        end_reason=r["end_reason"],
                        paid_at=r["paid_at"],
                        accepted_at=r["accepted_at"],
                        ends_at=r["ends_at"],
                        ended_at=r["ended_at"],
                        extended_seconds=r["extended_seconds"],
                        extensions_total_idr=r["extensions_total_idr"],
                        last_seq=state.next_seq - 1,
                    )
                )
            self._create(ChatSession, sessions, [r["created_at"] for r in batch])
            self._remember("sessions", [(r["id"], s.pk) for r, s in zip(batch, sessions, strict=True)])
            for r, s in zip(batch, sessions, strict=True):
                mitra_user = self.user_pk["bestie", r["bestie_id"]] if r["bestie_id"] else None
                self.session_row[r["id"]] = (s.pk, s.client_id, s.mitra_id, mitra_user)

    def _write_messages(self) -> None:
        refused = self.refused_lines["messages"]
        grown = {}  # sessions imported before that get new messages → their new last seq
        fresh = (
            record
            for number, record in self._rows("messages")
            if number not in refused
            and not isinstance(record, Refused)
            and record["seq"] > self.sessions[record["session_id"]].database_last_seq
        )
        for batch in _chunks(fresh, self.batch_size):
            messages = []
            for r in batch:
                session = self.sessions[r["session_id"]]
                session_pk, client_user, _, mitra_user = self.session_row[r["session_id"]]
                sender = {"client": client_user, "bestie": mitra_user, "system": None}[r["sender"]]
                messages.append(
                    Message(
                        session_id=session_pk,
                        seq=r["seq"],
                        sender_id=sender,
                        kind=MessageKind.SYSTEM if r["sender"] == "system" else MessageKind.TEXT,
                        body=r["body"],
                        created_at=r["created_at"],
                    )
                )
                if session.imported_before:
                    grown[session_pk] = r["seq"]
            Message.objects.bulk_create(messages)
            self.report.entities["messages"].created += len(messages)
        for session_pk, last_seq in grown.items():
            ChatSession.objects.filter(pk=session_pk).update(last_seq=last_seq)

    def _write_payments(self) -> None:
        for batch in self._new_records("payments"):
            payments = [
                Payment(
                    session_id=self.session_row[r["session_id"]][0],
                    kind=r["kind"],
                    package_code=self.sessions[r["session_id"]].package_code,
                    amount_idr=r["amount_idr"],
                    external_id=r["external_id"],
                    invoice_id=r["invoice_id"],
                    invoice_url="",
                    status=r["status"],
                    paid_at=r["paid_at"],
                    paid_amount_idr=r["paid_amount_idr"],
                    payment_method=r["payment_method"],
                    payment_channel=r["payment_channel"],
                )
                for r in batch
            ]
            self._create(Payment, payments, [r["created_at"] for r in batch])
            self._remember("payments", [(r["id"], p.pk) for r, p in zip(batch, payments, strict=True)])
            for r, p in zip(batch, payments, strict=True):
                self.payment_row[r["id"]] = (p.pk, p.session_id)

    def _write_refunds(self) -> None:
        for batch in self._new_records("refunds"):
            refunds = [
                Refund(
                    payment_id=self.payment_row[r["payment_id"]][0],
                    session_id=self.payment_row[r["payment_id"]][1],
                    amount_idr=r["amount_idr"],
                    reason=r["reason"],
                    status=r["status"],
                    is_gateway_refund=r["is_gateway_refund"],
                    idempotency_key=str(uuid.uuid5(REFUND_KEY_NAMESPACE, r["id"])),
                    xendit_refund_id=r["xendit_refund_id"],
                    settled_at=r["settled_at"],
                )
                for r in batch
            ]
            self._create(Refund, refunds, [r["created_at"] for r in batch])
            self._remember("refunds", [(r["id"], x.pk) for r, x in zip(batch, refunds, strict=True)])

    def _write_earnings(self) -> None:
        for batch in self._new_records("earnings"):
            # The ledger's shape (sessions_app/settlement.py): the platform's part beside the
            # Bestie's (the rest of the price the row was computed from: the Node backend always
            # booked the full price), the minutes, and the payout period of the row's month.
            facts = ChatSession.objects.filter(
                pk__in=[self.session_row[r["session_id"]][0] for r in batch]
            ).values_list("pk", "price_idr", "extensions_total_idr", "duration_seconds", "extended_seconds")
            sessions = {
                pk: (price + extensions, (duration + extended) // 60)
                for pk, price, extensions, duration, extended in facts
            }
            entries = []
            for r in batch:
                session_pk = self.session_row[r["session_id"]][0]
                gross, minutes = sessions[session_pk]
                entries.append(
                    EarningsEntry(
                        mitra_id=self.session_row[r["session_id"]][2],
                        session_id=session_pk,
                        amount_idr=r["amount_idr"],
                        platform_idr=max(0, gross - r["amount_idr"]),
                        share_percent=r["share_percent"],
                        paid_minutes=minutes,
                        served_minutes=minutes,
                        reason="legacy_import",
                        period=period_of(r["created_at"]),
                    )
                )
            self._create(EarningsEntry, entries, [r["created_at"] for r in batch])
            self._remember("earnings", [(r["id"], e.pk) for r, e in zip(batch, entries, strict=True)])

    def _write_ratings(self) -> None:
        rated = set()
        for batch in self._new_records("ratings"):
            ratings = [
                Rating(
                    session_id=self.session_row[r["session_id"]][0],
                    mitra_id=self.session_row[r["session_id"]][2],
                    score=r["score"],
                    comment=r["comment"],
                )
                for r in batch
            ]
            self._create(Rating, ratings, [r["created_at"] for r in batch])
            self._remember("ratings", [(r["id"], x.pk) for r, x in zip(batch, ratings, strict=True)])
            rated.update(x.mitra_id for x in ratings)
        # The Bestie's average is counted from the rating rows, so it stays right however many
        # runs brought them in.
        for chunk in _chunks(sorted(rated), self.batch_size):
            ratings = Rating.objects.filter(mitra=OuterRef("pk")).order_by().values("mitra")
            Mitra.objects.filter(pk__in=chunk).update(
                rating_count=Coalesce(Subquery(ratings.annotate(n=Count("pk")).values("n")), 0),
                rating_sum=Coalesce(Subquery(ratings.annotate(s=Sum("score")).values("s")), 0),
            )

    def _write_reports(self) -> None:
        for batch in self._new_records("reports"):
            reports = []
            for r in batch:
                session_pk, client_user, _, mitra_user = self.session_row[r["session_id"]]
                reports.append(
                    Report(
                        session_id=session_pk,
                        reporter_id=client_user if r["reporter"] == "client" else mitra_user,
                        reason=r["reason"],
                        detail=r["detail"],
                        status=r["status"],
                        resolution_note=r["resolution_note"],
                        resolved_at=r["resolved_at"],
                    )
                )
            self._create(Report, reports, [r["created_at"] for r in batch])
            self._remember("reports", [(r["id"], x.pk) for r, x in zip(batch, reports, strict=True)])

    def _reseed_mirror(self) -> None:
        """The Valkey mirror learns the new Besties (offline) and the deactivated ones."""
        if mirror.is_enabled():
            mirror.seed_from_postgres()
