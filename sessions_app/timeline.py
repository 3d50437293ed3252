"""A session's timeline as a story for the control center: each `SessionEvent` becomes one
Indonesian sentence ("Dibayar Rp45.000 via Xendit", "Ditawarkan ke Bestie Ayu", "Bestie Ayu
menerima"), with who did it, the time to the second in Asia/Jakarta, and a link to the payment,
refund or report behind it.

The sentences are written in Indonesian here, in one table (`SENTENCES`), rather than as gettext
msgids: the control center's staff read Indonesian only. An event kind missing from the table still
reads as words (`kind_label`), never as a raw code or JSON.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from mitras.models import Mitra
from payments.models import Payment, Refund
from sessions_app.models import EndReason, Report, SessionEvent

KIND_LABELS = {
    "created": "Sesi dibuat",
    "paid": "Pembayaran diterima",
    "payment_paid": "Dibayar",
    "payment_free": "Gratis (voucher)",
    "payment_flagged": "Pembayaran ditandai",
    "offered": "Ditawarkan",
    "offer_declined": "Tawaran ditolak",
    "offer_expired": "Tawaran kedaluwarsa",
    "offer_withdrawn": "Tawaran ditarik",
    "accepted": "Diterima Bestie",
    "preferences_relaxed": "Preferensi dilonggarkan",
    "unmatched": "Tidak mendapat Bestie",
    "ending_soon": "Segera berakhir",
    "mitra_lost": "Bestie terputus",
    "mitra_back": "Bestie kembali",
    "extension_requested": "Perpanjangan diminta",
    "extended": "Diperpanjang",
    "ended": "Berakhir",
    "cancelled": "Dibatalkan",
    "rated": "Rating",
    "reported": "Laporan",
    "report_resolved": "Laporan diselesaikan",
    "settled": "Uang sesi diselesaikan",
    "staff_refund": "Refund oleh staf",
    "refund_created": "Refund dibuat",
    "refund_pending": "Refund diproses",
    "refund_succeeded": "Refund berhasil",
    "refund_failed": "Refund gagal",
    "refund_manual_settled": "Refund diselesaikan manual",
    "crisis_flagged": "Ditandai krisis",
    "crisis_acknowledged": "Krisis ditanggapi",
    "staff_message": "Pesan Tim HaloBestie",
    "blocked": "Diblokir",
    "transcript_erased": "Transkrip dihapus",
}

PREFERENCE_LABELS = {"topics": "topik", "gender": "gender", "language": "bahasa"}
SIDE_LABELS = {"client": "klien", "mitra": "Bestie"}
REPORT_REASON_LABELS = {
    "harassment": "pelecehan",
    "inappropriate": "perilaku tidak pantas",
    "spam": "spam",
    "safety": "keselamatan",
    "no_show": "tidak hadir",
    "other": "lainnya",
}
REFUND_REASON_LABELS = {
    "paid_after_close": "dibayar setelah sesi ditutup",
    "unserved_minutes": "menit yang tidak terlayani",
    "staff_decision": "keputusan staf",
    **{code: label.lower() for code, label in EndReason.choices},
}


def admin_url(name, args):
    """Control-center URLs: the admin lives in the internal URLconf, whichever listener asks."""
    return reverse(name, args=args, urlconf=settings.INTERNAL_URLCONF)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind) or kind.replace("_", " ").capitalize()


def rupiah(amount) -> str:
    return "Rp" + f"{int(amount or 0):,}".replace(",", ".")


def jakarta_time(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%d-%m-%Y %H:%M:%S WIB")


def _minutes(seconds) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 60} menit" if seconds % 60 == 0 else f"{seconds // 60} menit {seconds % 60} detik"


@dataclass(frozen=True)
class Link:
    url: str
    text: str


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    time: str  # Asia/Jakarta, to the second
    kind: str
    label: str
    sentence: str
    actor: str
    link: Link | None


class _Story:
    """What the sentences need besides the event: names and the rows they link to, each loaded
    once for the whole timeline."""

    def __init__(self, session, events):
        self.session = session
        mitra_ids = {e.data.get("mitra_id") for e in events if isinstance(e.data, dict)} - {None}
        actor_ids = {e.actor_id for e in events} - {None}
        mitras = list(
            Mitra.objects.filter(Q(pk__in=mitra_ids) | Q(user_id__in=actor_ids)).only(
                "id", "user_id", "display_name"
            )
        )
        self.mitra_names = {m.id: m.display_name for m in mitras}
        self.mitra_by_user = {m.user_id: m.display_name for m in mitras}
        self.payments = {p.external_id: p for p in Payment.objects.filter(session=session)}
        self.refunds = {str(r.id): r for r in Refund.objects.filter(session=session)}
        self.reports = list(Report.objects.filter(session=session))

    def bestie(self, mitra_id) -> str:
        name = self.mitra_names.get(mitra_id)
        if name is None and self.session.mitra_id and self.session.mitra_id == mitra_id:
            name = self.session.mitra.display_name
        return f"Bestie {name}" if name else "Bestie"

    def actor(self, user) -> str:
        if user is None:
            return "Sistem"
        if user.pk in self.mitra_by_user:
            return f"Bestie {self.mitra_by_user[user.pk]}"
        if user.role == "client":
            return f"Klien {user.display_name or user.phone or user.pk}"
        return f"Staf {user.display_name or user.email or user.pk}"

    def payment_link(self, external_id) -> Link | None:
        payment = self.payments.get(external_id)
        if payment is None:
            return None
        return Link(admin_url("admin:payments_payment_change", [payment.pk]), f"Pembayaran {external_id}")

    def refund_link(self, refund_id) -> Link | None:
        refund = self.refunds.get(str(refund_id))
        if refund is None:
            return None
        return Link(admin_url("admin:payments_refund_change", [refund.pk]), f"Refund {str(refund.pk)[:8]}")

    def report_link(self, report) -> Link | None:
        if report is None:
            return None
        return Link(admin_url("admin:sessions_app_report_change", [report.pk]), f"Laporan #{report.pk}")

    def report_of(self, *, report_id=None, reporter_id=None):
        for report in self.reports:
            if report.pk == report_id or (report_id is None and report.reporter_id == reporter_id):
                return report
        return None


def _via(payment) -> str:
    if payment is None:
        return ""
    if payment.invoice_id.startswith("local-"):
        return " via checkout lokal"
    method = " ".join(part for part in (payment.payment_method, payment.payment_channel) if part)
    return " via Xendit" + (f" ({method})" if method else "")


def _sentence(event, story: _Story) -> tuple[str, Link | None]:
    d = event.data if isinstance(event.data, dict) else {}
    kind = event.kind
    session = story.session
    if kind == "created":
        text = f"Sesi dibuat: paket {d.get('package') or session.package_code}"
        if d.get("requested_mitra_id"):
            text += f", meminta {story.bestie(d['requested_mitra_id'])}"
        if d.get("voucher_code"):
            text += f", voucher {d['voucher_code']}"
        return text, None
    if kind == "paid":
        return "Pembayaran diterima, mulai mencari Bestie", None
    if kind == "payment_paid":
        payment = story.payments.get(d.get("external_id"))
        what = " perpanjangan" if d.get("kind") == "extension" else ""
        return f"Dibayar{what} {rupiah(d.get('amount_idr'))}{_via(payment)}", story.payment_link(
            d.get("external_id")
        )
    if kind == "payment_free":
        return (
            f"Gratis dengan voucher (potongan {rupiah(d.get('discount_idr'))})",
            story.payment_link(d.get("external_id")),
        )
    if kind == "payment_flagged":
        reason = d.get("reason") or "tanpa alasan"
        return f"Pembayaran ditandai untuk staf: {reason}", story.payment_link(d.get("external_id"))
    if kind == "offered":
        return f"Ditawarkan ke {story.bestie(d.get('mitra_id'))}", None
    if kind == "offer_declined":
        return f"{story.bestie(d.get('mitra_id'))} menolak tawaran", None
    if kind == "offer_expired":
        return f"Tawaran ke {story.bestie(d.get('mitra_id'))} kedaluwarsa tanpa jawaban", None
    if kind == "offer_withdrawn":
        return f"Tawaran ke {story.bestie(d.get('mitra_id'))} ditarik", None
    if kind == "accepted":
        name = story.mitra_by_user.get(event.actor_id)
        return (f"Bestie {name} menerima" if name else "Bestie menerima"), None
    if kind == "preferences_relaxed":
        relaxed = ", ".join(PREFERENCE_LABELS.get(k, str(k)) for k in d.get("relaxed") or [])
        return f"Preferensi dilonggarkan: {relaxed or '–'}", None
    if kind == "unmatched":
        return "Tidak ada Bestie yang menerima: sesi berakhir tanpa Bestie", None
    if kind == "ending_soon":
        return "Peringatan terkirim: sesi segera berakhir", None
    if kind == "mitra_lost":
        return "Bestie terputus (heartbeat berhenti)", None
    if kind == "mitra_back":
        return "Bestie tersambung kembali", None
    if kind == "extension_requested":
        return (
            f"Perpanjangan {_minutes(d.get('duration_seconds'))} diminta",
            story.payment_link(d.get("external_id")),
        )
    if kind == "extended":
        if d.get("reason") == "crisis":
            return f"Diperpanjang {_minutes(d.get('seconds'))} gratis (krisis)", None
        return f"Diperpanjang {_minutes(d.get('seconds'))} ({rupiah(d.get('amount_idr'))})", None
    if kind == "ended":
        reason = dict(EndReason.choices).get(d.get("reason"), "")
        fault = {"mitra": ", kesalahan Bestie", "client": ", kesalahan klien"}.get(d.get("fault"), "")
        return f"Sesi berakhir: {reason.lower() or 'selesai'}{fault}", None
    if kind == "cancelled":
        reason = dict(EndReason.choices).get(d.get("reason"), "")
        return f"Sesi dibatalkan: {reason.lower() or 'tanpa alasan'}", None
    if kind == "rated":
        return f"Klien memberi rating {d.get('score')}/5", None
    if kind == "reported":
        report = story.report_of(reporter_id=event.actor_id)
        reason = REPORT_REASON_LABELS.get(d.get("reason"), d.get("reason") or "–")
        return f"Laporan dibuat: {reason}", story.report_link(report)
    if kind == "report_resolved":
        report = story.report_of(report_id=d.get("report_id"))
        return "Laporan diselesaikan", story.report_link(report)
    if kind == "settled":
        return (
            f"Uang sesi diselesaikan: Bestie {rupiah(d.get('mitra_idr'))}, platform "
            f"{rupiah(d.get('platform_idr'))}, refund {rupiah(d.get('refund_idr'))} "
            f"({d.get('served_minutes', 0)} dari {d.get('paid_minutes', 0)} menit dilayani)",
            None,
        )
    if kind == "staff_refund":
        return f"Refund {rupiah(d.get('amount_idr'))} oleh staf: {d.get('note') or '–'}", None
    if kind == "refund_created":
        reason = REFUND_REASON_LABELS.get(d.get("reason"), str(d.get("reason") or "–").replace("_", " "))
        return f"Refund {rupiah(d.get('amount_idr'))} dibuat ({reason})", story.refund_link(
            d.get("refund_id")
        )
    if kind in ("refund_pending", "refund_succeeded", "refund_failed", "refund_manual_settled"):
        verb = {
            "refund_pending": "diproses Xendit",
            "refund_succeeded": "berhasil",
            "refund_failed": "gagal",
            "refund_manual_settled": "diselesaikan manual",
        }[kind]
        return f"Refund {rupiah(d.get('amount_idr'))} {verb}", story.refund_link(d.get("refund_id"))
    if kind == "crisis_flagged":
        return f"Ditandai krisis (pesan dari {SIDE_LABELS.get(d.get('source'), 'peserta')})", None
    if kind == "crisis_acknowledged":
        return f"Staf menanggapi krisis: {d.get('note') or '–'}", None
    if kind == "staff_message":
        return "Tim HaloBestie menulis ke sesi", None
    if kind == "blocked":
        return f"Diblokir oleh {SIDE_LABELS.get(d.get('by'), 'peserta')}", None
    if kind == "transcript_erased":
        return f"Transkrip dihapus ({d.get('messages', 0)} pesan)", None
    return kind_label(kind), None


def session_timeline(*, session) -> list[TimelineEntry]:
    """The session's events as sentences, oldest first. A fixed number of queries."""
    events = list(
        SessionEvent.objects.filter(session=session).select_related("actor").order_by("created_at", "id")
    )
    story = _Story(session, events)
    entries = []
    for event in events:
        sentence, link = _sentence(event, story)
        entries.append(
            TimelineEntry(
                at=event.created_at,
                time=jakarta_time(event.created_at),
                kind=event.kind,
                label=kind_label(event.kind),
                sentence=sentence,
                actor=story.actor(event.actor),
                link=link,
            )
        )
    return entries
