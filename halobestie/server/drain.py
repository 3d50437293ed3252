"""Process-wide draining state: set on SIGTERM, read by /readyz and the socket consumers."""

import threading

_draining = threading.Event()


def start_draining():
    _draining.set()


def is_draining():
    return _draining.is_set()
