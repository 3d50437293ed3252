"""Hooks other apps register to hear about mitras, without mitras importing them.

The mitras app cannot import sessions_app (sessions build on mitras), so sessions_app registers
its callbacks here in its `AppConfig.ready()`:

    from mitras.hooks import on_mitra_available, on_mitra_deactivated
    on_mitra_available(dispatch_waiting_queue)      # callback(mitra_id: int)
    on_mitra_deactivated(withdraw_offers_of_mitra)  # callback(mitra_id: int)

The mitras services call `notify_*` after their transaction commits (never inside it), in the
thread that made the change:
- `notify_mitra_available`: a mitra may have a free slot now (went online, was reactivated, its
  capacity was raised, or its heartbeat came back after presence had lapsed). The callback
  re-checks in Postgres under its own locks; the notice is a hint, not a decision.
- `notify_mitra_deactivated`: staff deactivated the mitra (its offers and open sessions are the
  sessions app's business; its sockets are the realtime app's).

A failing callback is logged and does not stop the others: the state change already committed.
"""

import logging

logger = logging.getLogger(__name__)

_available_callbacks = []
_deactivated_callbacks = []


def on_mitra_available(callback):
    """Register `callback(mitra_id)`; usable as a decorator. Registering twice is a no-op."""
    if callback not in _available_callbacks:
        _available_callbacks.append(callback)
    return callback


def on_mitra_deactivated(callback):
    """Register `callback(mitra_id)`; usable as a decorator. Registering twice is a no-op."""
    if callback not in _deactivated_callbacks:
        _deactivated_callbacks.append(callback)
    return callback


def remove_callback(callback):
    """Unregister a callback from every hook (tests restore the registry with it)."""
    for callbacks in (_available_callbacks, _deactivated_callbacks):
        if callback in callbacks:
            callbacks.remove(callback)


def notify_mitra_available(mitra_id):
    """Call after commit. Runs every `on_mitra_available` callback."""
    _run(_available_callbacks, mitra_id, "mitra_available")


def notify_mitra_deactivated(mitra_id):
    """Call after commit. Runs every `on_mitra_deactivated` callback."""
    _run(_deactivated_callbacks, mitra_id, "mitra_deactivated")


def _run(callbacks, mitra_id, event):
    for callback in list(callbacks):
        try:
            callback(mitra_id)
        except Exception:
            logger.exception("hook %s failed for mitra %s", event, mitra_id)
