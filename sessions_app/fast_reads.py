"""A session's state and its message history as fast routes (halobestie/server/fastpath.py):
`GET /api/v1/sessions/<id>` and `GET /api/v1/sessions/<id>/messages` answered before Django's
middleware and DRF's dispatch, with one thread hop per request (the fast routes' read pool).

Authorisation is the views' own, not a copy: the same authentication classes in the same order
(the old backend's tokens during the cutover; ours: JWT, revoked tokens, inactive, deleted or
deactivated accounts, the role claim), the same permission class
(IsClientOrMitra), the same per-person read limit, the same selector (the session's client or
its current mitra, nobody else), the same serializers and JSON renderer. Only success is answered
here: on anything else (no or a bad token, another person's session, an unknown id, a query that
does not validate, the limit reached) the handler declines and Django answers as before, with
its own status and envelope. The route patterns are stricter than Django's (a canonical
lower-case UUID; `after_seq` and `limit` only): anything else goes to Django too.
"""

import copy
import types
import uuid
from datetime import datetime
from urllib.parse import parse_qsl

from django.db import connections
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import JSONObject
from django.db.models.query import ModelIterable
from django.http.request import HttpHeaders
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from halobestie.accounts.authentication import JWTAuthentication, check_may_authenticate
from halobestie.accounts.models import RevokedAccessToken, Role
from halobestie.accounts.permissions import IsClientOrMitra
from halobestie.server import fastpath
from halobestie.server.safe_input import text_is_storable
from halobestie.server.throttles import PersonRateThrottle
from payments.models import Payment
from sessions_app import api, selectors
from sessions_app.models import ChatSession
from sessions_app.serializers import MessageOut, SessionOut

_UUID = r"(?P<session_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_renderer = JSONRenderer()
# The views' serializers, bound once: DRF builds a serializer's fields (model introspection, a
# couple of milliseconds) on each instance, and these hold no per-object state, so one instance
# each serves every request (`to_representation`, what `.data` and `many=True` call).
_session_out = SessionOut()
_message_out = MessageOut()


def _request_like(scope):
    """What the authentication, permission and throttle classes read of a request."""
    meta = {"REMOTE_ADDR": (scope.get("client") or (None,))[0] or ""}
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            meta["HTTP_AUTHORIZATION"] = value.decode("latin-1")
    return types.SimpleNamespace(META=meta, headers=HttpHeaders(meta), method="GET", user=None, auth=None)


def _authorised_user(request):
    """The user exactly as the view would accept them, or None (Django answers then)."""
    result = None
    try:
        # DRF's order and rule: the first authenticator that answers decides (the old backend's
        # tokens during the cutover window, then ours).
        for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
            result = authenticator().authenticate(request)
            if result is not None:
                break
    except (APIException, TokenError):
        return None
    if result is None:
        return None
    request.user, request.auth = result
    if not IsClientOrMitra().has_permission(request, None):
        return None
    if not PersonRateThrottle().allow_request(request, None):
        return None
    return request.user


# What SessionOut shows of the latest payment (serializers.SessionOut.get_payment).
_PAYMENT_FIELDS = ("id", "kind", "status", "amount_idr", "discount_idr", "invoice_url", "expires_at")


def _our_token(request):
    """(validated token, user id) when our JWTAuthentication would judge this request and every
    authenticator before it stepped aside; None when another one answers (then the general path
    `_authorised_user` runs), and raises as the authenticators do (the caller declines)."""
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
        raise TokenError("no token")
    # simplejwt's signature, expiry and type checks (no database); revocation is read below.
    token = SimpleJWTAuthentication.get_validated_token(ours, raw)
    return token, token[jwt_settings.USER_ID_CLAIM]


class _PreparedQuery:
    """A queryset compiled once by Django and run with new parameters: compiling this one (the
    select_related joins, the subqueries) costs more CPU than PostgreSQL takes to answer it. The
    SQL, its select list and its row-to-objects mapping are Django's own (ModelIterable); only
    the parameters change, placed where the sentinels were. If a sentinel cannot be found as given
    in the compiled parameters, every call compiles the queryset afresh (plain Django)."""

    _SENTINELS = {
        "jti": "fast-read-sentinel-jti",
        "user_id": -918_273_645,
        "session_id": uuid.UUID("00000000-0000-4000-8000-00000000fa57"),
    }

    def __init__(self, build):
        self.build = build  # build(**values) -> queryset
        self._prepared = None  # (queryset, compiler, sql, parameter slots) once compiled

    def _prepare(self):
        queryset = self.build(**self._SENTINELS)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        # Each parameter: a sentinel's name, or a constant of the query (the keys of the JSON
        # object, EXISTS's 1). Every sentinel must be found as given: one that was converted
        # would otherwise be taken for a constant.
        slots = []
        for param in params:
            name = next(
                (n for n, v in self._SENTINELS.items() if type(v) is type(param) and v == param), None
            )
            slots.append((name, param))
        if {name for name, _ in slots} - {None} != set(self._SENTINELS):
            return False
        self._prepared = (queryset, compiler, sql, tuple(slots))
        return True

    def run(self, values):
        if self._prepared is None and not self._prepare():
            return list(self.build(**values))
        queryset, template, sql, slots = self._prepared
        params = tuple(constant if name is None else values[name] for name, constant in slots)
        compiler = copy.copy(template)
        compiler.connection = connections[queryset.db]  # this thread's connection
        compiler.as_sql = lambda *args, **kwargs: (sql, params)
        chained = queryset._chain()
        chained.query.get_compiler = lambda *args, **kwargs: compiler
        return list(ModelIterable(chained))


def _session_query(*, with_payment):
    def build(*, jti, user_id, session_id):
        annotations = {"fast_revoked": Exists(RevokedAccessToken.objects.filter(jti=jti))}
        if with_payment:
            payment = (
                Payment.objects.filter(session_id=OuterRef("pk"))
                .order_by("-created_at")
                .values(data=JSONObject(**{name: name for name in _PAYMENT_FIELDS}))[:1]
            )
            annotations["fast_payment"] = Subquery(payment)
        return (
            ChatSession.objects.select_related("client", "mitra__user", "rating")
            .filter(Q(client_id=user_id) | Q(mitra__user_id=user_id), pk=session_id)
            .annotate(**annotations)[:1]
        )

    return _PreparedQuery(build)


# with_payment -> the query (a session's state shows its latest payment; its history does not)
_SESSION_QUERIES = {True: _session_query(with_payment=True), False: _session_query(with_payment=False)}


def _participant_session(scope, session_id, *, with_payment):
    """The session (client, mitra, rating and latest payment joined in) if the caller may read
    it, else None: what `_authorised_user` + `selectors.session_get_for_participant` decide, in
    one statement instead of four or five (revoked jti, user, mitra, session, payment). The rules
    are the same functions: simplejwt's token checks, `check_may_authenticate` (inactive,
    deleted, deactivated, role claim), IsClientOrMitra, the per-person read limit, the selector's
    participant rule. Anything unusual (an old backend's token, simplejwt's password-hash claim
    on) takes the general path."""
    request = _request_like(scope)
    if "HTTP_AUTHORIZATION" not in request.META:
        return None
    try:
        ours = _our_token(request)
    except (APIException, TokenError, KeyError):
        return None
    if ours is None or jwt_settings.USER_ID_FIELD != "id" or jwt_settings.CHECK_REVOKE_TOKEN:
        return _general_session(request, session_id)
    token, user_id = ours
    jti = token.get("jti")
    if not isinstance(jti, str):
        return _general_session(request, session_id)
    try:
        values = {"jti": jti, "user_id": int(user_id), "session_id": uuid.UUID(session_id)}
    except (TypeError, ValueError):
        return None
    found = _SESSION_QUERIES[with_payment].run(values)
    session = found[0] if found else None
    if session is None or session.fast_revoked:
        return None
    user_id = str(user_id)
    if session.mitra is not None and str(session.mitra.user_id) == user_id:
        user = session.mitra.user
        user.mitra = session.mitra  # the user's own mitra row (one-to-one), as a query would give
    elif str(session.client_id) == user_id:
        user = session.client
    else:
        return None
    # The selector's rule: a client reads the sessions they booked, a mitra the ones they hold.
    if user.role == Role.CLIENT and str(session.client_id) != user_id:
        return None
    if user.role == Role.MITRA and (session.mitra is None or str(session.mitra.user_id) != user_id):
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
    if not PersonRateThrottle().allow_request(request, None):
        return None
    if with_payment:
        session.payments_newest = [_payment(session.fast_payment)] if session.fast_payment else []
    return session


def _payment(data):
    if data.get("expires_at") is not None:
        data["expires_at"] = datetime.fromisoformat(data["expires_at"])
    return Payment(**data)


def _general_session(request, session_id):
    """The general path: the authenticators, permission and throttle, then the selector."""
    user = _authorised_user(request)
    if user is None:
        return None
    try:
        return selectors.session_get_for_participant(session_id=session_id, user=user)
    except APIException:
        return None


def _session_state(scope, session_id):
    if scope.get("query_string"):
        return None  # the view takes none; Django judges it (a NUL in it is a 400)
    session = _participant_session(scope, session_id, with_payment=True)
    if session is None:
        return None
    return _renderer.render(_session_out.to_representation(session))  # = session_payload(session)


def _message_history(scope, session_id):
    raw = scope.get("query_string") or b""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not set(names) <= {"after_seq", "limit"}:
        return None
    if not all(text_is_storable(part) for pair in pairs for part in pair):
        return None
    query = api.MessagesQuery(data=dict(pairs))
    if not query.is_valid():
        return None
    session = _participant_session(scope, session_id, with_payment=False)
    if session is None:
        return None
    limit = query.validated_data["limit"]
    messages = selectors.messages_after(
        session=session, after_seq=query.validated_data["after_seq"], limit=limit + 1
    )
    return _renderer.render(
        {
            "results": [_message_out.to_representation(message) for message in messages[:limit]],
            "has_more": len(messages) > limit,
        }
    )


async def session_state(scope, match):
    return await fastpath.run_sync(_session_state, scope, match["session_id"])


async def message_history(scope, match):
    return await fastpath.run_sync(_message_history, scope, match["session_id"])


def register():
    fastpath.register_pattern(
        r"/api/v1/sessions/" + _UUID, route="api/v1/sessions/<uuid:session_id>", handler=session_state
    )
    fastpath.register_pattern(
        r"/api/v1/sessions/" + _UUID + r"/messages",
        route="api/v1/sessions/<uuid:session_id>/messages",
        handler=message_history,
    )
