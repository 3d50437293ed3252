"""Hostile input stopped at the boundary, before it reaches a serializer, a service or Postgres.

- JSON nested deeper than MAX_JSON_DEPTH (the apps never send more than a few levels; a deep one
  made the parser or a serializer recurse until RecursionError, a 500).
- NUL characters and lone UTF-16 surrogates in any string or key: PostgreSQL cannot store
  either (a DataError, a 500), and no app ever sends them.

One check for every door: the REST and webhook JSON parser (`SafeJSONParser`, DRF's default in
settings), URL paths and query strings (`halobestie.server.middleware.HostileInputMiddleware`), and the
chat socket's frames (`sessions_app.consumers`). Each refuses with a 4xx in its own envelope.
"""

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 20
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class HostileInput(ValueError):
    """The value cannot be accepted; `str(exc)` says why, in Indonesian, for the error detail."""


def check_text(value: str) -> None:
    if _UNSTORABLE.search(value):
        raise HostileInput("Teks berisi karakter yang tidak diizinkan (NUL atau surrogate).")


def text_is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def check_json_value(data, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise HostileInput for nesting deeper than `max_depth` or an unstorable string anywhere
    (keys too). Iterative: a deep value cannot make this recurse."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            check_text(value)
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise HostileInput(f"JSON bersarang terlalu dalam (paling banyak {max_depth} tingkat).")
            if isinstance(value, dict):
                for key, inner in value.items():
                    check_text(key)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in value)


def loads(text: str):
    """json.loads with the checks above; HostileInput (a ValueError) for anything refused."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise HostileInput(
            f"JSON bersarang terlalu dalam (paling banyak {MAX_JSON_DEPTH} tingkat)."
        ) from None
    check_json_value(data)
    return data


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the depth and string checks: 400 `parse_error` in the envelope."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON bersarang terlalu dalam (paling banyak {MAX_JSON_DEPTH} tingkat)."
            ) from None
        try:
            check_json_value(data)
        except HostileInput as exc:
            raise ParseError(str(exc)) from None
        return data
