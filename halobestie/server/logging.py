"""JSON-lines logging on stdout. Never give a logger a message body, an OTP code or a token.

Every line is one JSON object: ts, level, logger, msg, the request id of the request or socket
being served, and the record's extra fields. As a second line of defence, the formatter redacts
what looks like a credential in any text it writes: query parameters such as `ticket=` or
`token=` (uvicorn's own WebSocket lines print the path with its query string) and
`Bearer …` / `Authorization: …` values.
"""

import json
import logging
import re
from datetime import UTC, datetime

from halobestie.server.request_context import current_request_id

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}

REDACTED = "[redacted]"
_SECRET_PARAMS = re.compile(
    r"(?i)(\b(?:ticket|token|access|refresh|access_token|refresh_token|code|otp|password|secret|"
    r"signature|key)=)[^&\s\"']+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_AUTH_HEADER = re.compile(r"(?i)(\b(?:authorization|x-callback-token)[\"']?\s*[:=]\s*[\"']?)[^\"',\s]+")


def redact(text):
    """The text with credential-looking values replaced by `[redacted]`."""
    if not text:
        return text
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                if isinstance(value, str):
                    value = redact(value)
                elif not isinstance(value, (int, float, bool, type(None))):
                    value = redact(str(value))
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
