"""A session's state and a page of its messages rendered as JSON by PostgreSQL, in the fast reads'
one statement (sessions_app/fast_reads.py), byte for byte what the views return (issue 22).

Rendering them in Python cost most of a fast read: building six model instances from a row of a
hundred columns, then SessionOut's 27 fields (or MessageOut's 9 per message), then `json.dumps`.
Here PostgreSQL writes the body in the statement that reads it (`row_to_json` and
`array_to_json`, which write compact JSON with the keys in the order selected, as DRF's
JSONRenderer does; a page of messages as concatenated text, `messages_lateral`) and the body
comes back as bytes, passed through untouched but for DRF's
escaping of U+2028 and U+2029 (`finish`).

What the fragments below reproduce, field by field (tests/sessions_app/test_fast_bodies.py
compares them with the views' bodies in every state a session shows):
- times as DRF's DateTimeField shows them: ISO 8601 in the current zone (Asia/Jakarta: the
  session zone of the pool's connections; another current zone is rendered by the serializers),
  microseconds only when not zero, `Z` at offset zero; the payment's `expires_at` as SessionOut writes
  it (`isoformat()` of the UTC value psycopg and Django read);
- strings escaped as `json.dumps(ensure_ascii=False)` escapes them (PostgreSQL's escape_json
  escapes the same characters the same way);
- SessionOut's method fields: `duration_minutes`, `client_display_name` ("Klien" when blank),
  `payment` (the latest one), `is_rated`, `preferences` (held = asked and not relaxed, in
  PREFERENCE_KINDS' order). `queue_position` and `eta_seconds` are null: a waiting session (the
  only one that shows them) is rendered by SessionOut itself (fast_reads).

`session_json` / `messages_lateral` return None when the serializers or DRF's settings are not
the ones written for here (a field added, renamed or retyped, another datetime format, ASCII or
indented JSON): the caller then renders with the serializers, as before.
"""

from django.conf import settings
from rest_framework import serializers
from rest_framework.fields import ISO_8601
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from halobestie.accounts.models import User
from halobestie.runtime.schema import PREFERENCE_KINDS
from mitras.models import Mitra
from payments.models import Payment
from sessions_app.models import ChatSession, Message, Rating
from sessions_app.serializers import MessageOut, SessionOut

# SessionOut's fields, in its order, as written below.
SESSION_FIELDS = (
    "id", "status", "end_reason", "package_code", "duration_minutes", "price_idr",
    "extended_seconds", "extensions_total_idr", "discount_idr", "mitra", "requested_mitra_id",
    "allow_any_mitra", "client_display_name", "created_at", "paid_at", "offered_at",
    "offer_expires_at", "accepted_at", "ends_at", "ended_at", "mitra_lost_at", "last_seq",
    "queue_position", "eta_seconds", "payment", "is_rated", "preferences",
)  # fmt: skip
# SessionOut's model fields shown as they are stored (DRF's plain fields), by their DRF class.
_PLAIN = {
    serializers.UUIDField: "uuid",
    serializers.ChoiceField: "text",
    serializers.CharField: "text",
    serializers.IntegerField: "integer",
    serializers.BooleanField: "boolean",
    serializers.DateTimeField: "time",
}
MESSAGE_FIELDS = (
    "id", "session_id", "seq", "sender_id", "kind", "body", "client_msg_id", "is_masked", "created_at",
)  # fmt: skip
_DEFAULT_CLIENT_NAME = "Klien"  # SessionOut.get_client_display_name
_SET = {  # how each preference kind tells it was asked (preferences.preferences_asked)
    "gender": "s.{preferred_gender} <> ''",
    "topics": "s.{preferred_topics} <> '[]'::jsonb",
    "language": "s.{preferred_language} <> ''",
}


def _column(model, name):
    return model._meta.get_field(name).column


def iso_time(expression):
    """SQL: DRF DateTimeField's ISO 8601 text of the timestamptz `expression` in the session's
    time zone (the pool's, halobestie/db/async_reads.py; null stays null):
    `2026-11-30T14:05:09.120000+07:00`, `…T14:05:09+07:00` (no fraction when it is zero), `…Z` at
    offset zero. One `to_char` (the zone's offset written by PostgreSQL, in whole minutes: the
    seconds of a local mean time before 1925 are not written, as Python would)."""
    return (
        f"replace(replace(to_char({expression}, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'), "
        "'.000000', ''), '+00:00', 'Z')"
    )


def _iso_utc(expression):
    """SQL: `isoformat()` of the UTC datetime psycopg reads for `expression` (`…+00:00`)."""
    return (
        f"(replace(to_char({expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
        f"'.000000', '') || '+00:00')"
    )


def _json_list(expression):
    """SQL: the JSON array `expression` (jsonb) written compactly, as json.dumps writes its list of
    strings (jsonb would write `["a", "b"]`); an empty one without taking it apart."""
    return (
        f"CASE WHEN {expression} = '[]'::jsonb THEN '[]'::json ELSE "  # noqa: S608
        f"(SELECT coalesce(array_to_json(array_agg(e.v::json ORDER BY e.n)), '[]'::json) "
        f"FROM jsonb_array_elements({expression}) WITH ORDINALITY e(v, n)) END"
    )


def _object(pairs):
    """SQL: a JSON object of [(key, SQL expression)], keys in this order, compact."""
    selected = ", ".join(f"{sql} AS {key}" for key, sql in pairs)
    return f"(SELECT row_to_json(o) FROM (SELECT {selected}) o)"  # noqa: S608


def _settings_match():
    """DRF renders as these fragments do: ISO times in the current zone, UTF-8 compact JSON (the
    renderer's class attributes, which DRF sets from its settings when it is imported)."""
    renderers = list(api_settings.DEFAULT_RENDERER_CLASSES)
    return (
        settings.USE_TZ
        and isinstance(api_settings.DATETIME_FORMAT, str)
        and api_settings.DATETIME_FORMAT.lower() == ISO_8601
        and renderers[:1] == [JSONRenderer]
        and not JSONRenderer.ensure_ascii
        and JSONRenderer.compact
    )


def _plain_kind(field):
    """ "uuid", "text", … for a DRF field that shows the stored value as it is, else None."""
    output = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if type(field) is serializers.DateTimeField and (
        hasattr(field, "timezone") or output != api_settings.DATETIME_FORMAT
    ):
        return None
    if type(field) is serializers.UUIDField and field.uuid_format != "hex_verbose":
        return None
    if type(field) is serializers.BigIntegerField:
        return None if getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING) else "integer"
    return _PLAIN.get(type(field))


def _plain_column(field, alias, model):
    """(kind, the model field, `alias.column`) of `field` (a plain DRF field reading one column of
    `model`), or None."""
    kind = _plain_kind(field)
    columns = {f.attname: f for f in model._meta.concrete_fields}
    if kind is None or field.source not in columns or field.source_attrs != [field.source]:
        return None
    if type(field).get_attribute is not serializers.Field.get_attribute:
        return None
    column = columns[field.source]
    return kind, column, f"{alias}.{column.column}"


def _plain(field, alias, model):
    """SQL showing `field` (a plain DRF field reading one column of `model`), or None."""
    found = _plain_column(field, alias, model)
    if found is None:
        return None
    kind, _, column = found
    return iso_time(column) if kind == "time" else column


def _json_text(field, alias, model):
    """SQL: the JSON text (type text) of `field` (a plain DRF field reading one column of
    `model`) as json.dumps writes it, or None. Cheaper for PostgreSQL than `row_to_json`, which
    looks up every column's type and output function again for every row."""
    found = _plain_column(field, alias, model)
    if found is None:
        return None
    kind, model_field, column = found
    sql = {
        "uuid": f"'\"' || {column} || '\"'",
        "text": f"to_json({column})::text",  # escape_json, as row_to_json escapes
        "integer": f"{column}::text",
        "boolean": f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' END",
        "time": f"'\"' || {iso_time(column)} || '\"'",
    }[kind]
    return f"coalesce({sql}, 'null')" if model_field.null else sql


def session_json():
    """SQL (a json value over the aliases s: session, c: client, m: mitra, r: rating, p: latest
    payment) equal to SessionOut's body for a session that is not waiting, in the session's time
    zone; None when SessionOut is not the one written for here. (Keep the statement under 4 KiB:
    psycopg parses longer ones again on every run.)"""
    if not _settings_match():
        return None
    fields = SessionOut().fields
    if tuple(fields) != SESSION_FIELDS or set(PREFERENCE_KINDS) != set(_SET):
        return None
    methods = {
        "duration_minutes": f"(s.{_column(ChatSession, 'duration_seconds')} / 60)",
        "mitra": _mitra_json(fields["mitra"]),
        "client_display_name": (
            f"coalesce(nullif(c.{_column(User, 'display_name')}, ''), '{_DEFAULT_CLIENT_NAME}')"
        ),
        "queue_position": "NULL::integer",
        "eta_seconds": "NULL::integer",
        "payment": _payment_json(),
        "is_rated": f"(r.{_column(Rating, 'id')} IS NOT NULL)",
        "preferences": _preferences_json(),
    }
    pairs = []
    for name, field in fields.items():
        sql = methods.get(name) or _plain(field, "s", ChatSession)
        if sql is None:
            return None
        pairs.append((name, sql))
    return _object(pairs)


def _mitra_json(field):
    """SQL: SessionMitraOut of the session's mitra (null without one), or None."""
    if not isinstance(field, serializers.Serializer):
        return None
    pairs = []
    for name, child in field.fields.items():
        sql = _plain(child, "m", Mitra)
        if sql is None:
            return None  # not a plain field: SessionOut renders the body
        pairs.append((name, sql))
    return f"CASE WHEN m.{_column(Mitra, 'id')} IS NULL THEN NULL ELSE {_object(pairs)} END"


def _payment_json():
    """SessionOut.get_payment of the latest payment (null without one)."""
    column = {name: f"p.{_column(Payment, name)}" for name in ("id", "kind", "status")}
    pairs = [
        ("id", column["id"]),
        ("kind", column["kind"]),
        ("status", column["status"]),
        ("amount_idr", f"p.{_column(Payment, 'amount_idr')}"),
        ("discount_idr", f"p.{_column(Payment, 'discount_idr')}"),
        ("invoice_url", f"p.{_column(Payment, 'invoice_url')}"),
        ("expires_at", _iso_utc(f"p.{_column(Payment, 'expires_at')}")),
    ]
    return f"CASE WHEN {column['id']} IS NULL THEN NULL ELSE {_object(pairs)} END"


def _preferences_json():
    """preferences.preferences_out of the session."""
    names = {
        name: _column(ChatSession, name)
        for name in ("preferred_topics", "preferred_gender", "preferred_language", "relaxed_preferences")
    }
    relaxed = f"s.{names['relaxed_preferences']}"
    held = ", ".join(
        f"CASE WHEN {_SET[kind].format(**names)} AND NOT ({relaxed} ? '{kind}') THEN '{kind}' END"
        for kind in PREFERENCE_KINDS
    )
    return _object(
        [
            ("topics", _json_list(f"s.{names['preferred_topics']}")),
            ("gender", f"nullif(s.{names['preferred_gender']}, '')"),
            ("language", f"nullif(s.{names['preferred_language']}, '')"),
            ("held", f"array_to_json(array_remove(ARRAY[{held}]::text[], NULL))"),
            ("relaxed", _json_list(relaxed)),
        ]
    )


def messages_lateral():
    """SQL of a LATERAL subquery over the session s giving `fetched` (how many of the first
    %(fetch)s messages after seq %(after)s exist) and `results` (the JSON array of MessageOut's
    bodies of the first %(limit)s of them as `bpchar`, which the fast reads' pool passes through
    as bytes; null when none); None when MessageOut is not the one written for here.

    Each message's JSON is concatenated text (`_json_text`), the page is the first %(limit)s of
    the ordered array of them (a slice, no window function), joined by commas. The text is not
    cast to json (json's input would parse it all again); `bpchar` is a free relabelling of text
    that no model column uses. PostgreSQL's CPU per 50-message page: ≈ 0.47 → 0.37 ms
    (docs/PERFORMANCE.md)."""
    if not _settings_match():
        return None
    fields = MessageOut().fields
    if tuple(fields) != MESSAGE_FIELDS:
        return None
    parts = []
    for name, field in fields.items():
        sql = _json_text(field, "m", Message)
        if sql is None:
            return None
        parts.append(f"'{',' if parts else '{'}\"{name}\":' || {sql}")
    seq, session_fk = _column(Message, "seq"), _column(Message, "session")
    message = " || ".join(parts) + " || '}'"
    return (
        "SELECT count(*) AS fetched, ('[' || array_to_string((array_agg(y.body ORDER BY y.seq))"  # noqa: S608
        "[1:%(limit)s::integer], ',') || ']')::bpchar AS results "
        f"FROM (SELECT m.{seq} AS seq, {message} AS body FROM {Message._meta.db_table} m "
        f"WHERE m.{session_fk} = s.id AND m.{seq} > %(after)s ORDER BY m.{seq} LIMIT %(fetch)s) y"
    )


_LINE_SEPARATORS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9")


def finish(body):
    """`body` (bytes from PostgreSQL) as DRF's JSONRenderer writes it: U+2028 and U+2029 escaped."""
    if _LINE_SEPARATORS[0] in body or _LINE_SEPARATORS[1] in body:
        body = body.replace(_LINE_SEPARATORS[0], b"\\u2028").replace(_LINE_SEPARATORS[1], b"\\u2029")
    return body
