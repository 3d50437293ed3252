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

import types
from urllib.parse import parse_qsl

from django.http.request import HttpHeaders
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework_simplejwt.exceptions import TokenError

from halobestie.accounts.permissions import IsClientOrMitra
from halobestie.server import fastpath
from halobestie.server.safe_input import text_is_storable
from halobestie.server.throttles import PersonRateThrottle
from sessions_app import api, selectors
from sessions_app.serializers import MessageOut, session_payload

_UUID = r"(?P<session_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_renderer = JSONRenderer()


def _request_like(scope):
    """What the authentication, permission and throttle classes read of a request."""
    meta = {"REMOTE_ADDR": (scope.get("client") or (None,))[0] or ""}
    for key, value in scope.get("headers") or ():
        if key == b"authorization":
            meta["HTTP_AUTHORIZATION"] = value.decode("latin-1")
    return types.SimpleNamespace(META=meta, headers=HttpHeaders(meta), method="GET", user=None, auth=None)


def _authorised_user(scope):
    """The user exactly as the view would accept them, or None (Django answers then)."""
    request = _request_like(scope)
    if "HTTP_AUTHORIZATION" not in request.META:
        return None
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


def _session_state(scope, session_id):
    if scope.get("query_string"):
        return None  # the view takes none; Django judges it (a NUL in it is a 400)
    user = _authorised_user(scope)
    if user is None:
        return None
    try:
        session = selectors.session_get_for_participant(session_id=session_id, user=user)
    except APIException:
        return None
    return _renderer.render(session_payload(session))


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
    user = _authorised_user(scope)
    if user is None:
        return None
    try:
        session = selectors.session_get_for_participant(session_id=session_id, user=user)
    except APIException:
        return None
    limit = query.validated_data["limit"]
    messages = selectors.messages_after(
        session=session, after_seq=query.validated_data["after_seq"], limit=limit + 1
    )
    return _renderer.render(
        {"results": MessageOut(messages[:limit], many=True).data, "has_more": len(messages) > limit}
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
