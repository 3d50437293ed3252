"""The runtime config's shape, defaults and validation.

Staff edit these values in the control center; every instance picks a save up at once. Money is
whole rupiah, durations are whole seconds or minutes as the name says.
"""

from dataclasses import asdict, dataclass, fields

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from halobestie.runtime.crisis_lexicon import CRISIS_EXCLUSIONS, CRISIS_WORDS, MITRA_ALERT_WORDS


@dataclass(frozen=True)
class Package:
    code: str
    name: str
    duration_minutes: int
    price_idr: int
    # The Bestie's share of this package in percent; None: the global `mitra_share_percent`.
    mitra_share_percent: int | None = None

    @property
    def duration_seconds(self):
        return self.duration_minutes * 60

    def public_json(self):
        return {k: v for k, v in asdict(self).items() if k != "mitra_share_percent"}


DEFAULT_PACKAGES = (
    Package(code="curhat-15", name="Curhat 15 menit", duration_minutes=15, price_idr=15000),
    Package(code="curhat-30", name="Curhat 30 menit", duration_minutes=30, price_idr=25000),
    Package(code="curhat-60", name="Curhat 60 menit", duration_minutes=60, price_idr=45000),
)

# Defaults of crisis_words, crisis_exclusions and mitra_alert_words: halobestie/runtime/crisis_lexicon.py.
DEFAULT_CRISIS_WORDS = CRISIS_WORDS

# The kinds of matching preference (sessions_app/preferences.py KINDS; the runtime app imports no app).
PREFERENCE_KINDS = ("gender", "topics", "language")

DEFAULT_HOTLINE_TEXT = (
    "Kamu tidak sendirian. Jika kamu dalam bahaya atau berpikir untuk menyakiti diri sendiri, "
    "segera hubungi layanan darurat 112 atau Layanan SEJIWA 119 ext. 8 (24 jam)."
)


SHARE_BASES = ("list_price", "paid_price")
CLIENT_FAULT_END_POLICIES = ("full", "served")

# What GET /api/v1/config shows; the rest (shares, crisis words) stays internal.
PUBLIC_KEYS = (
    "packages",
    "offer_timeout_seconds",
    "matching_timeout_seconds",
    "payment_timeout_seconds",
    "ending_soon_lead_seconds",
    "heartbeat_ttl_seconds",
    "max_message_length",
    "hotline_text",
    "preference_relax_order",
    "preference_relax_after_seconds",
    "booking_lead_seconds",
    "booking_slot_minutes",
    "booking_horizon_days",
    "booking_grace_seconds",
    "booking_change_deadline_seconds",
)


@dataclass(frozen=True)
class RuntimeConfigValues:
    packages: tuple = DEFAULT_PACKAGES
    offer_timeout_seconds: int = 60
    matching_timeout_seconds: int = 600
    payment_timeout_seconds: int = 900
    ending_soon_lead_seconds: int = 120
    heartbeat_ttl_seconds: int = 30
    stale_grace_seconds: int = 30
    mitra_lost_grace_seconds: int = 120
    mitra_share_percent: int = 70
    # What the mitra's share is computed on when a voucher discounted the session: "list_price"
    # (the package price: promotions are the platform's cost) or "paid_price" (what was paid).
    mitra_share_basis: str = "list_price"
    # Xendit's smallest IDR invoice: a discount never leaves less than this to pay (but may make
    # a session wholly free, with no invoice at all).
    xendit_min_invoice_idr: int = 1000
    # A staff end for the client's fault (a report against the client upheld): "full" = the
    # Bestie earns the full share and nothing goes back; "served" = as a Bestie-side end
    # (the Bestie earns the served minutes, the client gets the unserved minutes back).
    client_fault_end_policy: str = "full"
    default_capacity: int = 3
    message_retention_days: int = 90
    max_message_length: int = 4000
    crisis_words: tuple = DEFAULT_CRISIS_WORDS
    # Phrases inside which a crisis word does not count ("setengah mati", "mati lampu").
    crisis_exclusions: tuple = CRISIS_EXCLUSIONS
    # Phrases in a Bestie's message that alert staff (besides the crisis words).
    mitra_alert_words: tuple = MITRA_ALERT_WORDS
    # Free minutes added to a session once when it is first flagged (zero cost, no earnings).
    crisis_free_minutes: int = 10
    # Raw payment callbacks keep their payer fields this long (disputes), then only what the
    # bookkeeping needs (docs/privacy.md).
    callback_payer_retention_days: int = 180
    hotline_text: str = DEFAULT_HOTLINE_TEXT
    # Matching preferences (sessions_app/preferences.py): the n-th preference a session set, in
    # this order, is let go n-th delay seconds after it entered matching.
    preference_relax_order: tuple = ("gender", "topics", "language")
    preference_relax_after_seconds: tuple = (60, 120, 180)
    # Rest for Besties (mitras/rest.py): no offers for this long after a crisis-flagged session
    # ends (0: none); and after this many sessions in a row (0: no limit) a break of
    # `mitra_break_seconds`. Sessions are in a row when each was accepted less than
    # `mitra_break_seconds` after the one before ended.
    mitra_crisis_cooldown_seconds: int = 900
    mitra_max_sessions_in_row: int = 8
    mitra_break_seconds: int = 900
    # Booked sessions (sessions_app/bookings.py, docs/payments.md): the earliest a slot may start
    # from now, the step between bookable starts, how far ahead, the gap kept free around every
    # booking, how long an unpaid booking holds its time, how long the booked Bestie has after
    # the start before the client may choose a refund or any Bestie, until when before the start
    # the client may cancel (full refund) or move a booking, and the two reminder lead times
    # (0 switches one off).
    booking_lead_seconds: int = 3600
    booking_slot_minutes: int = 30
    booking_horizon_days: int = 14
    booking_buffer_minutes: int = 10
    booking_hold_seconds: int = 900
    booking_grace_seconds: int = 600
    booking_change_deadline_seconds: int = 7200
    booking_reminder_first_seconds: int = 86400
    booking_reminder_second_seconds: int = 900

    def package(self, code):
        """The package with this code, or None."""
        return next((p for p in self.packages if p.code == code), None)

    def share_percent_for(self, package_code):
        """The Bestie's share for a package: its own percentage, else the global one."""
        package = self.package(package_code)
        if package is not None and package.mitra_share_percent is not None:
            return package.mitra_share_percent
        return self.mitra_share_percent

    def to_json(self):
        data = asdict(self)
        data["packages"] = [asdict(p) for p in self.packages]
        for name in _PHRASE_LISTS:
            data[name] = list(getattr(self, name))
        data["preference_relax_order"] = list(self.preference_relax_order)
        data["preference_relax_after_seconds"] = list(self.preference_relax_after_seconds)
        return data

    def public_json(self):
        data = self.to_json()
        data["packages"] = [p.public_json() for p in self.packages]
        return {key: data[key] for key in PUBLIC_KEYS}


_INT_LIMITS = {
    "offer_timeout_seconds": (10, 3600),
    "matching_timeout_seconds": (30, 86400),
    "payment_timeout_seconds": (60, 86400),
    "ending_soon_lead_seconds": (10, 3600),
    "heartbeat_ttl_seconds": (5, 600),
    "stale_grace_seconds": (0, 3600),
    "mitra_lost_grace_seconds": (0, 3600),
    "mitra_share_percent": (0, 100),
    "xendit_min_invoice_idr": (1, 1_000_000),
    "default_capacity": (1, 50),
    "message_retention_days": (1, 3650),
    "max_message_length": (1, 4000),
    "crisis_free_minutes": (0, 120),
    "callback_payer_retention_days": (30, 3650),
    "mitra_crisis_cooldown_seconds": (0, 86400),
    "mitra_max_sessions_in_row": (0, 100),
    "mitra_break_seconds": (60, 86400),
    "booking_lead_seconds": (0, 7 * 86400),
    "booking_slot_minutes": (5, 240),
    "booking_horizon_days": (1, 90),
    "booking_buffer_minutes": (0, 240),
    "booking_hold_seconds": (60, 86400),
    "booking_grace_seconds": (60, 3600),
    "booking_change_deadline_seconds": (0, 7 * 86400),
    "booking_reminder_first_seconds": (0, 7 * 86400),
    "booking_reminder_second_seconds": (0, 7 * 86400),
}
_PHRASE_LISTS = ("crisis_words", "crisis_exclusions", "mitra_alert_words")


def _int(name, value, errors):
    low, high = _INT_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = ["Harus bilangan bulat."]
    elif not low <= value <= high:
        errors[name] = [f"Harus antara {low} dan {high}."]
    return value


def _packages(value, errors):
    if not isinstance(value, list) or not value:
        errors["packages"] = ["Harus daftar paket yang tidak kosong."]
        return ()
    packages, codes = [], set()
    for index, item in enumerate(value):
        prefix = f"packages.{index}"
        if not isinstance(item, dict):
            errors[prefix] = ["Harus objek paket."]
            continue
        code, name = item.get("code"), item.get("name")
        minutes, price = item.get("duration_minutes"), item.get("price_idr")
        if not isinstance(code, str) or not code or len(code) > 32:
            errors[f"{prefix}.code"] = ["Kode paket wajib (maks. 32 karakter)."]
        elif code in codes:
            errors[f"{prefix}.code"] = ["Kode paket harus unik."]
        codes.add(code)
        if not isinstance(name, str) or not name:
            errors[f"{prefix}.name"] = ["Nama paket wajib."]
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 600:
            errors[f"{prefix}.duration_minutes"] = ["Durasi harus 1–600 menit."]
        if isinstance(price, bool) or not isinstance(price, int) or not 1000 <= price <= 10_000_000:
            errors[f"{prefix}.price_idr"] = ["Harga harus rupiah bulat antara 1.000 dan 10.000.000."]
        share = item.get("mitra_share_percent")
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100
        ):
            errors[f"{prefix}.mitra_share_percent"] = ["Bagian Bestie harus 0–100 (atau kosong)."]
        packages.append(
            Package(
                code=code, name=name, duration_minutes=minutes, price_idr=price, mitra_share_percent=share
            )
        )
    return tuple(packages)


def validate_values(raw):
    """Raw JSON (as stored or as staff typed it) → RuntimeConfigValues.

    Missing keys take their defaults; unknown keys are refused, so a typo never silently does
    nothing. Raises django's ValidationError with a message per field.
    """
    if not isinstance(raw, dict):
        raise ValidationError({"values": ["Konfigurasi harus berupa objek JSON."]})
    defaults = RuntimeConfigValues()
    known = {f.name for f in fields(RuntimeConfigValues)}
    errors = {}
    for key in raw:
        if key not in known:
            errors[key] = ["Kunci tidak dikenal."]
    values = {}
    for name in known:
        if name not in raw:
            continue
        value = raw[name]
        if name == "packages":
            values[name] = _packages(value, errors)
        elif name in _PHRASE_LISTS:
            if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
                errors[name] = ["Harus daftar kata."]
            else:
                values[name] = tuple(w.strip().lower() for w in value)
        elif name == "mitra_share_basis":
            if value not in SHARE_BASES:
                errors[name] = [f"Harus salah satu dari: {', '.join(SHARE_BASES)}."]
            values[name] = value
        elif name == "preference_relax_order":
            if not isinstance(value, list) or sorted(value) != sorted(PREFERENCE_KINDS):
                errors[name] = [f"Harus urutan dari: {', '.join(PREFERENCE_KINDS)} (masing-masing sekali)."]
            else:
                values[name] = tuple(value)
        elif name == "preference_relax_after_seconds":
            if (
                not isinstance(value, list)
                or len(value) != len(PREFERENCE_KINDS)
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 86400 for v in value)
                or any(a > b for a, b in zip(value, value[1:], strict=False))
            ):
                errors[name] = [f"Harus {len(PREFERENCE_KINDS)} detik bulat yang tidak menurun."]
            else:
                values[name] = tuple(value)
        elif name == "client_fault_end_policy":
            if value not in CLIENT_FAULT_END_POLICIES:
                errors[name] = [f"Harus salah satu dari: {', '.join(CLIENT_FAULT_END_POLICIES)}."]
            values[name] = value
        elif name == "hotline_text":
            if not isinstance(value, str) or not value.strip():
                errors[name] = ["Teks wajib."]
            values[name] = value
        else:
            values[name] = _int(name, value, errors)
    if errors:
        raise ValidationError(errors)
    result = RuntimeConfigValues(**{**{k: getattr(defaults, k) for k in known}, **values})
    if result.preference_relax_after_seconds[-1] >= result.matching_timeout_seconds:
        message = "Semua preferensi harus dilepas sebelum batas waktu pencarian."
        raise ValidationError({"preference_relax_after_seconds": [message]})
    if result.ending_soon_lead_seconds >= min(p.duration_seconds for p in result.packages):
        raise ValidationError({"ending_soon_lead_seconds": ["Harus lebih pendek dari paket terpendek."]})
    return result


# How the control center shows each key: its kind (which form field), label, help and group. A key
# without an entry still gets a field, inferred from its default and name (see `field_info`), but
# every key should have one: tests/halobestie/test_runtime_fields.py asks for it.
KINDS = ("money", "seconds", "minutes", "days", "percent", "integer", "text", "choice", "lines",
         "seconds_list", "packages")  # fmt: skip
GROUPS = {
    "money": _("Packages and money"),
    "timing": _("Timing and matching"),
    "safety": _("Crisis and safety"),
    "data": _("Messages and data"),
    "bookings": _("Bookings"),
    "other": _("Other settings"),
}


@dataclass(frozen=True)
class FieldInfo:
    kind: str
    label: str
    help_text: str = ""
    group: str = "other"
    choices: tuple = ()  # (value, label) pairs of a "choice"


FIELD_INFO = {
    "packages": FieldInfo(
        "packages", _("Packages"),
        _("One package per line: code | name | minutes | price in rupiah | Bestie share in percent "
          "(may be empty: the general share applies)."),
        "money",
    ),
    "mitra_share_percent": FieldInfo(
        "percent", _("Bestie share"),
        _("The part of a session's price the Bestie earns, unless the package sets its own."), "money",
    ),
    "mitra_share_basis": FieldInfo(
        "choice", _("Share basis with a voucher"),
        _("What the Bestie's share is computed on when a voucher lowered the price."), "money",
        (("list_price", _("The package price (promotions are the platform's cost)")),
         ("paid_price", _("The price the client paid"))),
    ),
    "xendit_min_invoice_idr": FieldInfo(
        "money", _("Smallest Xendit invoice"),
        _("A discount never leaves less than this to pay (but may make a session wholly free)."), "money",
    ),
    "client_fault_end_policy": FieldInfo(
        "choice", _("Ending for the client's fault"),
        _("What the Bestie earns and the client gets back when staff end a session for the client's fault."),
        "money",
        (("full", _("The Bestie earns the full share, nothing is refunded")),
         ("served", _("The Bestie earns the minutes served, the client gets the rest back"))),
    ),
    "offer_timeout_seconds": FieldInfo(
        "seconds", _("Offer timeout"),
        _("How long a Bestie may consider an offered session before it goes to the next Bestie."),
        "timing",
    ),
    "matching_timeout_seconds": FieldInfo(
        "seconds", _("Matching timeout"),
        _("How long a paid session looks for a Bestie before it ends unmatched and is refunded."),
        "timing",
    ),
    "payment_timeout_seconds": FieldInfo(
        "seconds", _("Payment timeout"), _("How long a new session waits for its payment before it expires."),
        "timing",
    ),
    "ending_soon_lead_seconds": FieldInfo(
        "seconds", _("Ending-soon warning"),
        _("How long before the end both sides are told the session is ending; shorter than the "
          "shortest package."),
        "timing",
    ),
    "heartbeat_ttl_seconds": FieldInfo(
        "seconds", _("Heartbeat lifetime"),
        _("A Bestie whose app sent no heartbeat for this long no longer counts as present."), "timing",
    ),
    "stale_grace_seconds": FieldInfo(
        "seconds", _("Grace before going offline"),
        _("Added to the heartbeat lifetime before an online Bestie without heartbeats is switched offline."),
        "timing",
    ),
    "mitra_lost_grace_seconds": FieldInfo(
        "seconds", _("Grace for a lost Bestie"),
        _("How long an active session waits for its Bestie's app to come back before it ends."), "timing",
    ),
    "default_capacity": FieldInfo(
        "integer", _("Default capacity"), _("How many sessions at once a new Bestie takes."), "timing",
    ),
    "preference_relax_order": FieldInfo(
        "lines", _("Order of letting preferences go"),
        _("One per line: gender, topics, language. The first is let go first while no Bestie fits."),
        "timing",
    ),
    "preference_relax_after_seconds": FieldInfo(
        "seconds_list", _("Let preferences go after"),
        _("Seconds after matching starts, one per line, not decreasing: when the first, second and "
          "third preference is let go."),
        "timing",
    ),
    "crisis_words": FieldInfo(
        "lines", _("Crisis words"),
        _("One phrase per line. A client message with one of them flags the session and alerts staff."),
        "safety",
    ),
    "crisis_exclusions": FieldInfo(
        "lines", _("Crisis exclusions"),
        _("One phrase per line inside which a crisis word does not count (\"mati lampu\")."), "safety",
    ),
    "mitra_alert_words": FieldInfo(
        "lines", _("Bestie alert words"),
        _("One phrase per line. A Bestie message with one of them alerts staff."), "safety",
    ),
    "crisis_free_minutes": FieldInfo(
        "minutes", _("Free minutes in a crisis"),
        _("Minutes added once, free, when a session is first flagged."), "safety",
    ),
    "hotline_text": FieldInfo(
        "text", _("Hotline text"), _("Shown to a client whose message raised a crisis flag."), "safety",
    ),
    "max_message_length": FieldInfo(
        "integer", _("Longest message"), _("Characters in one chat message."), "data",
    ),
    "message_retention_days": FieldInfo(
        "days", _("Keep messages for"), _("Days chat messages are kept before they are deleted."), "data",
    ),
    "callback_payer_retention_days": FieldInfo(
        "days", _("Keep payer details for"),
        _("Days raw payment callbacks keep the payer's details (for disputes)."), "data",
    ),
    # Keys of issues 19 (rest for Besties) and 25 (bookings), described ahead of their merge.
    "mitra_crisis_cooldown_seconds": FieldInfo(
        "seconds", _("Bestie cool-down after a crisis"),
        _("No offers to a Bestie for this long after a crisis-flagged session ends (0: none)."), "timing",
    ),
    "mitra_max_sessions_in_row": FieldInfo(
        "integer", _("Most sessions in a row"),
        _("After this many sessions in a row a Bestie gets a break (0: no limit)."), "timing",
    ),
    "mitra_break_seconds": FieldInfo(
        "seconds", _("Break after sessions in a row"),
        _("How long the break lasts; sessions are in a row when each began less than this after "
          "the one before ended."),
        "timing",
    ),
    "booking_lead_seconds": FieldInfo(
        "seconds", _("Earliest booking"), _("The earliest a booked session may start, from now."), "bookings",
    ),
    "booking_slot_minutes": FieldInfo(
        "minutes", _("Booking slot step"), _("The step between the start times a client may book."),
        "bookings",
    ),
    "booking_horizon_days": FieldInfo(
        "days", _("Booking horizon"), _("How far ahead a session may be booked."), "bookings",
    ),
    "booking_buffer_minutes": FieldInfo(
        "minutes", _("Gap around a booking"),
        _("Time kept free for the Bestie before and after every booking."), "bookings",
    ),
    "booking_hold_seconds": FieldInfo(
        "seconds", _("Unpaid booking hold"), _("How long an unpaid booking keeps its time."), "bookings",
    ),
    "booking_grace_seconds": FieldInfo(
        "seconds", _("Grace for the booked Bestie"),
        _("How long after the start the booked Bestie has before the client may take a refund or "
          "any Bestie."),
        "bookings",
    ),
    "booking_change_deadline_seconds": FieldInfo(
        "seconds", _("Cancel or move until"),
        _("How long before the start a client may still cancel (full refund) or move a booking."), "bookings",
    ),
    "booking_reminder_first_seconds": FieldInfo(
        "seconds", _("First booking reminder"),
        _("How long before the start the first reminder goes (0: none)."), "bookings",
    ),
    "booking_reminder_second_seconds": FieldInfo(
        "seconds", _("Second booking reminder"),
        _("How long before the start the second reminder goes (0: none)."), "bookings",
    ),
}  # fmt: skip

_NAME_SUFFIX_KINDS = (("_idr", "money"), ("_seconds", "seconds"), ("_minutes", "minutes"),
                      ("_days", "days"), ("_percent", "percent"))  # fmt: skip


def field_info(name):
    """How to show the key `name`: its FIELD_INFO entry, else inferred from its default value
    (int, str, tuple) and its name's unit suffix, labelled with its name."""
    if name in FIELD_INFO:
        return FIELD_INFO[name]
    default = next(f.default for f in fields(RuntimeConfigValues) if f.name == name)
    if isinstance(default, str):
        kind = "text"
    elif isinstance(default, tuple):
        kind = "seconds_list" if name.endswith("_seconds") else "lines"
    else:
        kind = next((k for suffix, k in _NAME_SUFFIX_KINDS if name.endswith(suffix)), "integer")
    return FieldInfo(kind, name.replace("_", " ").capitalize())


def int_limits(name):
    """(lowest, highest) accepted for an integer key, or None."""
    return _INT_LIMITS.get(name)


def config_keys():
    """Every key, in the order the dataclass declares them."""
    return [f.name for f in fields(RuntimeConfigValues)]
