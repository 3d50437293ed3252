"""Hooks other apps register to hear about accounts, without accounts importing them.

Accounts sits below every other app (they all import it), so an app that must react to an
account change registers a callback here in its `AppConfig.ready()`:

    from halobestie.accounts.hooks import on_client_deleted
    on_client_deleted(cancel_open_session_of_client)   # callback(user_id: int)

- `notify_client_deleted`: a client erased their account (`DELETE /api/v1/me`). Their personal
  data is gone and every token refused; an open chat session, a pending invoice, or open sockets
  are the other apps' business (the sessions app is expected to cancel or end the open session
  here, and close the user's sockets).

Called after the transaction commits, in the thread that made the change. A failing callback is
logged and does not stop the others: the deletion already committed.

- `notify_client_erasing`: the same erasure, but INSIDE its transaction, for the other apps'
  copies of the client's personal data (message bodies, comments, report texts, payer fields in
  payment callbacks): erased together with the account or not at all. A failing callback fails
  the erasure (the client gets an error and can retry), never half of it.
- `notify_client_phone_erasing`: the same erasure, inside its transaction, while the phone is
  still known (`callback(user, phone)`): the promotions app keeps a keyed hash of the phone there
  (docs/privacy.md). Its exceptions propagate: the erasure rolls back.
"""

import logging

logger = logging.getLogger(__name__)

_client_deleted_callbacks = []
_client_erasing_callbacks = []
_client_phone_erasing_callbacks = []


def on_client_erasing(callback):
    """Register `callback(user_id)` to run inside the erasure's transaction. Idempotent."""
    if callback not in _client_erasing_callbacks:
        _client_erasing_callbacks.append(callback)
    return callback


def notify_client_erasing(user_id):
    """Call inside the erasure's transaction; exceptions propagate (and roll it back)."""
    for callback in list(_client_erasing_callbacks):
        callback(user_id)


def on_client_phone_erasing(callback):
    """Register `callback(user, phone)` to run inside the erasure's transaction, before the phone
    is cleared. Idempotent."""
    if callback not in _client_phone_erasing_callbacks:
        _client_phone_erasing_callbacks.append(callback)
    return callback


def notify_client_phone_erasing(user, phone):
    """Call inside the erasure's transaction, before the phone is cleared; exceptions propagate."""
    for callback in list(_client_phone_erasing_callbacks):
        callback(user, phone)


def on_client_deleted(callback):
    """Register `callback(user_id)`; usable as a decorator. Registering twice is a no-op."""
    if callback not in _client_deleted_callbacks:
        _client_deleted_callbacks.append(callback)
    return callback


def remove_callback(callback):
    """Unregister a callback (tests restore the registry with it)."""
    for callbacks in (_client_deleted_callbacks, _client_erasing_callbacks, _client_phone_erasing_callbacks):
        if callback in callbacks:
            callbacks.remove(callback)


def notify_client_deleted(user_id):
    """Call after commit. Runs every `on_client_deleted` callback."""
    for callback in list(_client_deleted_callbacks):
        try:
            callback(user_id)
        except Exception:
            logger.exception("hook client_deleted failed for user %s", user_id)
