"""The request id of the request (or socket) being served, for log lines."""

import contextvars

_request_id = contextvars.ContextVar("request_id", default=None)


def current_request_id():
    return _request_id.get()


def set_request_id(value):
    return _request_id.set(value)


def reset_request_id(token):
    _request_id.reset(token)
