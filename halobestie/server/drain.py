"""Process-wide draining state: set on SIGTERM, read by /readyz and the socket consumers.

Draining: the process still serves everything (DRAIN_SECONDS) while readiness fails. Stopping:
after that, the server is shutting down (halobestie/serve.py): its sockets are being closed and
the process exits, so a consumer's clean-up can skip what the exit undoes anyway (a socket's
channel-layer subscription goes with the process's subscriber connection)."""

import threading

_draining = threading.Event()
_stopping = threading.Event()


def start_draining():
    _draining.set()


def is_draining():
    return _draining.is_set()


def start_stopping():
    _draining.set()
    _stopping.set()


def is_stopping():
    return _stopping.is_set()
