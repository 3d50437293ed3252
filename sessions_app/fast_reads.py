"""A session's state and its message history as fast routes (halobestie/server/fastpath.py):
`GET /api/v1/sessions/<id>` and `GET /api/v1/sessions/<id>/messages` answered on the event loop,
before Django's middleware and DRF's dispatch, without a thread hop (issue 22).

Per read: the token verified in memory (simplejwt's own checks: signature, expiry, type; a header
seen before only has its expiry checked again), then ONE statement on the event loop's async pool
(halobestie/db/async_reads.py) reads whether the token was revoked, the session's client and
mitra as the rules read them, and the body itself, written as JSON by PostgreSQL
(sessions_app/fast_bodies.py: SessionOut's body with its rating and latest payment, or the page
of MessageOut's bodies), passed on as bytes. The rules are the views' own functions:
`check_may_authenticate` (inactive, deleted, deactivated, the role claim), IsClientOrMitra, the
per-person read limit (one Valkey INCR when a limit is set), the selector's participant rule (the
session's client or its current mitra, nobody else; also in the statement's WHERE).

Only success is answered here: on anything else (no or a bad token, an old backend's token,
another person's session, an unknown id, a query that does not validate, the limit reached,
PostgreSQL not answering) the handler declines and Django answers as before, with its own status
and envelope. A session waiting in the queue shows its place and wait estimate, which take more
reads: its state is read again as model instances (`_session_statement`) and rendered by
SessionOut on a worker thread (the one hop left, for that case only). The same read, rendered by
the serializers on the event loop, serves when the bodies cannot be written by PostgreSQL (the
serializers or DRF's JSON settings are not the ones fast_bodies was written for, or another time
zone than the pool's is active). The route patterns are stricter than Django's (a canonical
lower-case UUID; `after_seq` and `limit` only): anything else goes to Django too.
"""

import collections
import datetime
import functools
import re
import types
import uuid
from urllib.parse import parse_qsl

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.core.signals import setting_changed
from django.db import close_old_connections, connection
from django.dispatch import receiver
from django.http.request import HttpHeaders
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.fields import ISO_8601
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import aware_utcnow

from halobestie.accounts.authentication import JWTAuthentication, check_may_authenticate
from halobestie.accounts.models import RevokedAccessToken, Role, User
from halobestie.accounts.permissions import IsClientOrMitra
from halobestie.db import async_reads
from halobestie.server import fastpath, lifespan, throttles
from halobestie.server.safe_input import text_is_storable
from mitras.models import Mitra
from payments.models import Payment
from sessions_app import api, fast_bodies
from sessions_app.models import ChatSession, Message, Rating, Status
from sessions_app.serializers import MessageOut, SessionOut

_UUID = r"(?P<session_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_renderer = JSONRenderer()
# The views' serializers, bound once: DRF builds a serializer's fields (model introspection, a
# couple of milliseconds) on each instance, and these hold no per-object state, so one instance
# each serves every request (`to_representation`, what `.data` and `many=True` call).
_session_out = SessionOut()
_message_out = MessageOut()

# What SessionOut shows of the latest payment (serializers.SessionOut.get_payment).
_PAYMENT_FIELDS = ("id", "kind", "status", "amount_idr", "discount_idr", "invoice_url", "expires_at")


# The statements, written once from the models' own tables and columns -------------------------


def _columns(model, alias):
    """(attnames, "alias.col, …") of every concrete column of `model`."""
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], ", ".join(f"{alias}.{f.column}" for f in fields)


def _converters(model, attnames):
    """[(index, field, [converter])] for the fields whose database values Django converts (JSON)."""
    out = []
    for index, name in enumerate(attnames):
        field = next(f for f in model._meta.concrete_fields if f.attname == name)
        converters = field.get_db_converters(connection)
        if converters:
            out.append((index, field, converters))
    return out


class _Part:
    """One model's slice of a row: its columns, and the instance Django builds of them."""

    def __init__(self, model, alias, attnames=None):
        self.model = model
        if attnames is None:
            self.attnames, self.select = _columns(model, alias)
        else:
            # In the model's order of fields, as `from_db` takes a subset.
            fields = {f.attname: f for f in model._meta.concrete_fields if f.attname in attnames}
            self.attnames = list(fields)
            self.select = ", ".join(f"{alias}.{fields[name].column}" for name in self.attnames)
        self.width = len(self.attnames)
        self.converters = _converters(model, self.attnames)

    def build(self, row, start):
        values = list(row[start : start + self.width])
        if values[0] is None:  # a LEFT JOIN that found nothing (the primary key comes first)
            return None
        for index, field, converters in self.converters:
            for converter in converters:
                values[index] = converter(values[index], field, connection)
        return self.model.from_db("default", self.attnames, values)


@functools.cache
def _session_statement():
    """The statement (with %(jti)s, %(uid)s, %(sid)s) and the parts its row is made of."""
    session = _Part(ChatSession, "s")
    client = _Part(User, "c")
    mitra = _Part(Mitra, "m")
    mitra_user = _Part(User, "mu")
    rating = _Part(Rating, "r", ["id"])
    payment = _Part(Payment, "p", _PAYMENT_FIELDS)
    parts = (session, client, mitra, mitra_user, rating, payment)
    field = Payment._meta.get_field
    mitra_fk, client_fk = (ChatSession._meta.get_field(name).column for name in ("mitra", "client"))
    rating_fk = Rating._meta.get_field("session").column
    payment_fk = Payment._meta.get_field("session").column
    payment_created = Payment._meta.get_field("created_at").column
    mitra_user_fk = Mitra._meta.get_field("user").column
    # Only the models' own table and column names go into the text; every value is a parameter.
    sql = f"""
SELECT {", ".join(part.select for part in parts)},
    EXISTS (SELECT 1 FROM {RevokedAccessToken._meta.db_table} t WHERE t.jti = %(jti)s)
FROM {ChatSession._meta.db_table} s
JOIN {User._meta.db_table} c ON c.id = s.{client_fk}
LEFT JOIN {Mitra._meta.db_table} m ON m.id = s.{mitra_fk}
LEFT JOIN {User._meta.db_table} mu ON mu.id = m.{mitra_user_fk}
LEFT JOIN {Rating._meta.db_table} r ON r.{rating_fk} = s.id
LEFT JOIN LATERAL (
    SELECT {", ".join(field(name).column for name in payment.attnames)} FROM {Payment._meta.db_table}
    WHERE {payment_fk} = s.id ORDER BY {payment_created} DESC LIMIT 1
) p ON true
WHERE s.id = %(sid)s AND (s.{client_fk} = %(uid)s OR m.{mitra_user_fk} = %(uid)s)
"""  # noqa: S608
    return sql, parts


# What the views' rules read of the caller's account (check_may_authenticate, IsClientOrMitra, the
# person's read limit): the statement whose body PostgreSQL renders reads only these.
_USER_RULES = ("id", "role", "is_active", "deleted_at")
_MITRA_RULES = ("id", "user_id", "deactivated_at")


@functools.cache
def _rendered_statement(history):
    """The statement (with %(jti)s, %(uid)s, %(sid)s; the history's also %(after)s,
    %(fetch)s, %(limit)s) whose row is: revoked, the session's client id and status, the client,
    the mitra and the mitra's account as the rules read them, then the body rendered by PostgreSQL
    (sessions_app/fast_bodies.py: the state's JSON, or how many messages were fetched and the
    page's JSON array). None when the serializers are not the ones fast_bodies renders."""
    parts = (_Part(User, "c", _USER_RULES), _Part(Mitra, "m", _MITRA_RULES), _Part(User, "mu", _USER_RULES))
    if history:
        lateral = fast_bodies.messages_lateral()
        if lateral is None:
            return None
        body, joins = "h.fetched, h.results", f"CROSS JOIN LATERAL ({lateral}) h"
    else:
        rendered = fast_bodies.session_json()
        if rendered is None:
            return None
        body = rendered
        field = Payment._meta.get_field
        joins = f"""LEFT JOIN {Rating._meta.db_table} r ON r.{Rating._meta.get_field("session").column} = s.id
LEFT JOIN LATERAL (
    SELECT {", ".join(field(name).column for name in _PAYMENT_FIELDS)} FROM {Payment._meta.db_table}
    WHERE {field("session").column} = s.id ORDER BY {field("created_at").column} DESC LIMIT 1
) p ON true"""  # noqa: S608
    mitra_fk, client_fk = (ChatSession._meta.get_field(name).column for name in ("mitra", "client"))
    mitra_user_fk = Mitra._meta.get_field("user").column
    status = ChatSession._meta.get_field("status").column
    # Only the models' own table and column names go into the text; every value is a parameter.
    sql = f"""
SELECT EXISTS (SELECT 1 FROM {RevokedAccessToken._meta.db_table} t WHERE t.jti = %(jti)s),
    s.{client_fk}, s.{status}, {", ".join(part.select for part in parts)}, {body}
FROM {ChatSession._meta.db_table} s
JOIN {User._meta.db_table} c ON c.id = s.{client_fk}
LEFT JOIN {Mitra._meta.db_table} m ON m.id = s.{mitra_fk}
LEFT JOIN {User._meta.db_table} mu ON mu.id = m.{mitra_user_fk}
{joins}
WHERE s.id = %(sid)s AND (s.{client_fk} = %(uid)s OR m.{mitra_user_fk} = %(uid)s)
"""  # noqa: S608
    return sql, parts


# MessageOut's fields, each reading one column of the message (checked once: a field that reads
# anything else makes every message go through the serializer instead).
_MESSAGE_COLUMNS = {f.attname: f.column for f in Message._meta.concrete_fields}


@functools.cache
def _message_statement():
    """(the statement with %(sid)s, %(after)s, %(limit)s; [(name, DRF field)] in the row's
    order, or None when a field does not read exactly one column)."""
    fields = list(_message_out._readable_fields)
    simple = all(
        f.source in _MESSAGE_COLUMNS
        and f.source_attrs == [f.source]
        and type(f).get_attribute is serializers.Field.get_attribute
        for f in fields
    )
    if simple:
        names = [f.source for f in fields]
        plan = [(f.field_name, f, _shower(f)) for f in fields]
    else:
        names, plan = list(_MESSAGE_COLUMNS), None
    seq, session_fk = _MESSAGE_COLUMNS["seq"], _MESSAGE_COLUMNS["session_id"]
    sql = (  # the model's own table and column names; every value is a parameter
        f"SELECT {', '.join(_MESSAGE_COLUMNS[name] for name in names)} FROM {Message._meta.db_table} "  # noqa: S608
        f"WHERE {session_fk} = %(sid)s AND {seq} > %(after)s ORDER BY {seq} LIMIT %(limit)s"
    )
    return sql, names, plan


def _shower(field):
    """How `field` shows a stored value: its own `to_representation`, or for DRF's plain fields
    what theirs does, without the call (`int`, `str`, `bool` of a boolean column); None for a
    DateTimeField shown in ISO 8601 (see `_messages_out`)."""
    kind = type(field)
    if kind is serializers.DateTimeField:
        output = getattr(field, "format", api_settings.DATETIME_FORMAT)
        if isinstance(output, str) and output.lower() == ISO_8601:
            return None
    if kind is serializers.IntegerField:
        return int
    if kind is serializers.CharField:
        return str
    if kind is serializers.BooleanField:
        return bool  # a boolean column holds True or False, which DRF shows as they are
    if kind is serializers.UUIDField and field.uuid_format == "hex_verbose":
        return str
    return field.to_representation


def _messages_out(rows, names, plan):
    """MessageOut's representation of each row (what `to_representation` gives of the instance).
    A time is shown as DateTimeField.to_representation shows an aware one (a stored time always
    is), with the request's zone looked up once instead of once per message."""
    if plan is None:
        return [_message_out.to_representation(Message.from_db("default", names, list(row))) for row in rows]
    columns = []
    for name, field, shower in plan:
        zone = None
        if shower is None:
            zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
            if zone is None:
                shower = field.to_representation
        columns.append((name, shower, zone))
    out = []
    for row in rows:
        shown = {}
        for (name, shower, zone), value in zip(columns, row, strict=True):
            if value is None:
                shown[name] = None
            elif zone is not None:
                text = value.astimezone(zone).isoformat()
                shown[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
            else:
                shown[name] = shower(value)
        out.append(shown)
    return out


# Authentication and the participant rule ------------------------------------------------------


def _request_like(scope):
    """What the authentication and permission classes read of a request."""
    meta = {"REMOTE_ADDR": (scope.get("client") or (None,))[0] or ""}
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            meta["HTTP_AUTHORIZATION"] = value.decode("latin-1")
    return types.SimpleNamespace(META=meta, headers=HttpHeaders(meta), method="GET", user=None, auth=None)


# Authorization headers whose token passed simplejwt's checks (and every authenticator before ours
# stepped aside for it: the old backend's stepped aside because the token is not signed with its
# secret, which depends only on the text and the settings): (token, user id, jti) by the header's
# bytes. A header seen again is only checked for its token's expiry (as simplejwt checks it);
# revocation and the account are read with the session. Bounded; emptied when the JWT settings
# change (tests).
_VERIFIED_MAX = 10_000
_verified = collections.OrderedDict()


def _verify(scope):
    """(token, user id, jti) of the request's bearer token as our JWTAuthentication validates it
    (signature, expiry, type, jti; no database), or None; raises as the authenticators do."""
    request = _request_like(scope)
    if "HTTP_AUTHORIZATION" not in request.META:
        return None
    token = _our_token(request)
    if token is None:
        return None
    user_id, jti = token.get(jwt_settings.USER_ID_CLAIM), token.get("jti")
    if not isinstance(jti, str) or isinstance(user_id, bool):
        return None
    try:
        return token, int(user_id), jti
    except (TypeError, ValueError):
        return None


def _our_token(request):
    """The validated token when our JWTAuthentication would judge this request and every
    authenticator before it stepped aside, else None; raises as the authenticators do. In memory
    only: an authenticator that needs the database (an old backend's token) raises
    SynchronousOnlyOperation on the event loop, and the caller declines."""
    if jwt_settings.USER_ID_FIELD != "id" or jwt_settings.CHECK_REVOKE_TOKEN:
        return None  # not the settings this read is written for: Django judges
    ours = None
    for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if authenticator is JWTAuthentication:
            ours = authenticator()
            break
        if authenticator().authenticate(request) is not None:
            return None  # e.g. an old backend's token during the cutover window
    if ours is None:
        return None
    header = ours.get_header(request)
    raw = ours.get_raw_token(header) if header is not None else None
    if raw is None:
        return None
    return SimpleJWTAuthentication.get_validated_token(ours, raw)


@receiver(setting_changed)
def _forget_verified(setting, **kwargs):
    if setting in ("SIMPLE_JWT", "REST_FRAMEWORK", "SECRET_KEY", "LEGACY_JWT_SECRET"):
        _verified.clear()
    if setting in ("REST_FRAMEWORK", "USE_TZ"):
        _rendered_statement.cache_clear()


def _statement_values(scope, session_id):
    """(request, token, {jti, uid, sid}) for the statement, or None (Django judges the request)."""
    header = None
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            if header is not None:
                return None  # Django joins repeated headers, and refuses the result
            header = value
    if header is None:
        return None
    known = _verified.get(header)
    try:
        if known is None:
            known = _verify(scope)
            if known is None:
                return None
            if len(_verified) >= _VERIFIED_MAX:
                _verified.popitem(last=False)
            _verified[header] = known
        else:
            known[0].check_exp(current_time=aware_utcnow())
    except TokenError:
        _verified.pop(header, None)
        return None
    except (APIException, KeyError, SynchronousOnlyOperation):
        return None
    token, user_id, jti = known
    try:
        session_uuid = uuid.UUID(session_id)
    except ValueError:
        return None
    request = types.SimpleNamespace(method="GET", user=None, auth=None)  # what the permission reads
    return request, token, {"jti": jti, "uid": user_id, "sid": session_uuid}


async def _caller(request, token, user_id, client_id, client, mitra, mitra_user):
    """The caller's account if the view's authentication, permission, read limit and selector let
    them read the session (booked by `client_id`, held by `mitra`), else None."""
    if mitra is not None and mitra.user_id == user_id:
        user = mitra_user
        user.mitra = mitra  # the user's own mitra row (one-to-one), as a query would give
    elif client_id == user_id:
        user = client
    else:
        return None
    # The selector's rule: a client reads the sessions they booked, a mitra the ones they hold.
    if user.role == Role.CLIENT and client_id != user_id:
        return None
    if user.role == Role.MITRA and (mitra is None or mitra.user_id != user_id):
        return None
    try:
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            return None
        check_may_authenticate(user, role_claim=token.get("role"))
    except APIException:
        return None
    request.user, request.auth = user, token
    if not IsClientOrMitra().has_permission(request, None):
        return None
    if not await throttles.person_read_allowed(user):
        return None
    return user


def _built(parts, row, start):
    objects = []
    for part in parts:
        objects.append(part.build(row, start))
        start += part.width
    return objects


async def _participant_session(request, token, values, row):
    """The session (client, mitra, rating and latest payment attached) if the caller may read it,
    else None."""
    if row[-1]:  # the token was revoked
        return None
    session, client, mitra, mitra_user, rating, payment = _built(_session_statement()[1], row, 0)
    if await _caller(request, token, values["uid"], session.client_id, client, mitra, mitra_user) is None:
        return None
    ChatSession._meta.get_field("client").set_cached_value(session, client)
    ChatSession._meta.get_field("mitra").set_cached_value(session, mitra)
    if mitra is not None:
        Mitra._meta.get_field("user").set_cached_value(mitra, mitra_user)
    ChatSession._meta.get_field("rating").set_cached_value(session, rating)
    if payment is not None and payment.expires_at is not None:
        # Printed with its offset by SessionOut (`isoformat()`): in UTC, as Django reads it.
        payment.expires_at = payment.expires_at.astimezone(datetime.UTC)
    session.payments_newest = [payment] if payment is not None else []
    return session


async def _read(scope, session_id, *, messages=None):
    """(session, message rows) if the caller may read the session, else None: every model
    instance built, for the serializers."""
    found = _statement_values(scope, session_id)
    if found is None:
        return None
    request, token, values = found
    sql, _ = _session_statement()
    statements = [(sql, values)]
    if messages is not None:
        message_sql, _, _ = _message_statement()
        statements.append((message_sql, {"sid": values["sid"], **messages}))
    try:
        results = await async_reads.fetch(statements)
    except async_reads.ReadUnavailable:
        return None
    rows = results[0]
    if not rows:
        return None  # no such session, or not this person's: Django's 404
    session = await _participant_session(request, token, values, rows[0])
    if session is None:
        return None
    return session, results[1] if messages is not None else None


async def _read_rendered(scope, session_id, *, history, messages=None):
    """(status, the body's columns) if the caller may read the session, else None; the body as
    PostgreSQL rendered it (`_rendered_statement`). Raises LookupError when the serializers are
    not the ones PostgreSQL renders (the caller renders them instead)."""
    statement = _rendered_statement(history)
    if statement is None or timezone.get_current_timezone_name() != async_reads.pool_zone():
        raise LookupError("rendered by the serializers")
    found = _statement_values(scope, session_id)
    if found is None:
        return None
    request, token, values = found
    sql, parts = statement
    if messages is not None:
        values.update(messages)
    try:
        (rows,) = await async_reads.fetch([(sql, values)])
    except async_reads.ReadUnavailable:
        return None
    if not rows:
        return None  # no such session, or not this person's: Django's 404
    row = rows[0]
    if row[0]:  # the token was revoked
        return None
    # Only the caller's account is built: the mitra's (with their mitra row) when the caller holds
    # the session, else the client's.
    client_part, mitra_part, mitra_user_part = parts
    mitra_at = 3 + client_part.width
    client = mitra = mitra_user = None
    if row[mitra_at + _MITRA_RULES.index("user_id")] == values["uid"]:
        mitra = mitra_part.build(row, mitra_at)
        mitra_user = mitra_user_part.build(row, mitra_at + mitra_part.width)
    else:
        client = client_part.build(row, 3)
    if await _caller(request, token, values["uid"], row[1], client, mitra, mitra_user) is None:
        return None
    return row[2], row[mitra_at + mitra_part.width + mitra_user_part.width :]


# The routes ---------------------------------------------------------------------------------------


def _render_waiting(session):
    """A waiting session's state (its place in the queue and wait estimate read the database),
    on a worker thread with fresh connections as a request has."""
    close_old_connections()
    try:
        return _renderer.render(_session_out.to_representation(session))
    finally:
        close_old_connections()


async def session_state(scope, match):
    if scope.get("query_string"):
        return None  # the view takes none; Django judges it (a NUL in it is a 400)
    try:
        found = await _read_rendered(scope, match["session_id"], history=False)
    except LookupError:
        found = None
    else:
        if found is None:
            return None
        status, (body,) = found
        if status != Status.MATCHING:
            return fast_bodies.finish(body)
    # Waiting (its place and estimate read more), or SessionOut not the one PostgreSQL renders.
    found = await _read(scope, match["session_id"])
    if found is None:
        return None
    session, _ = found
    if session.status == Status.MATCHING:
        return await sync_to_async(_render_waiting, thread_sensitive=False)(session)
    return _renderer.render(_session_out.to_representation(session))  # = session_payload(session)


@functools.cache
def _default_query():
    query = api.MessagesQuery(data={})
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


_DIGITS = re.compile(rb"[0-9]{1,9}")


@functools.cache
def _integer_bounds():
    """{name: (min, max)} of MessagesQuery's fields when each is a plain IntegerField whose only
    validators are its bounds (what `_plain_query` checks), else None."""
    bounds = {}
    for name, field in api.MessagesQuery().fields.items():
        limits = (field.min_value, field.max_value)
        if type(field) is not serializers.IntegerField or len(field.validators) != sum(
            limit is not None for limit in limits
        ):
            return None
        bounds[name.encode()] = limits
    return bounds


def _plain_query(raw):
    """MessagesQuery's validated data of a query string made of its fields given as plain digits
    (`after_seq=40&limit=100`, the apps' shape), computed without building the serializer: the
    value is `int` of the digits (as IntegerField reads them), checked against the field's bounds
    (None when outside them: the view's 400). ... (Ellipsis) for any other shape."""
    bounds = _integer_bounds()
    if bounds is None:
        return ...
    values = {}
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        if name not in bounds or name in values or not _DIGITS.fullmatch(value):
            return ...
        values[name] = int(value)
    query = dict(_default_query())
    for name, value in values.items():
        low, high = bounds[name]
        if (low is not None and value < low) or (high is not None and value > high):
            return None
        query[name.decode()] = value
    return query


def _history_query(raw):
    """MessagesQuery's validated data of the query string, or None (Django judges it)."""
    if not raw:
        return _default_query()
    plain = _plain_query(raw)
    if plain is not ...:
        return plain
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not set(names) <= {"after_seq", "limit"}:
        return None
    if not all(text_is_storable(part) for pair in pairs for part in pair):
        return None
    query = api.MessagesQuery(data=dict(pairs))
    if not query.is_valid():
        return None
    return query.validated_data


async def message_history(scope, match):
    try:
        query = _history_query(scope.get("query_string") or b"")
    except ValueError:
        return None
    if query is None:
        return None
    limit = query["limit"]
    # messages_after's bounds (selectors.messages_after), one more to tell whether there are more.
    fetched = max(1, min(limit + 1, 500))
    bounds = {"after": query["after_seq"], "fetch": fetched}
    try:
        found = await _read_rendered(
            scope, match["session_id"], history=True, messages={**bounds, "limit": limit}
        )
    except LookupError:
        return await _history_by_serializer(scope, match, bounds, limit)
    if found is None:
        return None
    _, (count, page) = found
    return b"".join(
        (
            b'{"results":',
            fast_bodies.finish(page) if page is not None else b"[]",
            b',"has_more":',
            b"true" if count > limit else b"false",
            b"}",
        )
    )


async def _history_by_serializer(scope, match, bounds, limit):
    messages = {"after": bounds["after"], "limit": bounds["fetch"]}
    found = await _read(scope, match["session_id"], messages=messages)
    if found is None:
        return None
    _, rows = found
    _, names, plan = _message_statement()
    return _renderer.render(
        {
            "results": _messages_out(rows[:limit], names, plan),
            "has_more": len(rows) > limit,
        }
    )


async def _close_read_pool(listener):
    await async_reads.close_pools()


def register():
    lifespan.on_shutdown(_close_read_pool)
    fastpath.register_pattern(
        r"/api/v1/sessions/" + _UUID, route="api/v1/sessions/<uuid:session_id>", handler=session_state
    )
    fastpath.register_pattern(
        r"/api/v1/sessions/" + _UUID + r"/messages",
        route="api/v1/sessions/<uuid:session_id>/messages",
        handler=message_history,
    )
