"""Hooks other apps register to hear what happened to a payment, without payments importing them.

Sessions build on payments (a session opens an invoice, records its payment, asks for refunds),
so payments never imports sessions_app; sessions_app registers its handlers here in its
`AppConfig.ready()`:

    from payments import hooks
    hooks.on_invoice_paid(handle_paid)          # handler(payment)
    hooks.on_invoice_unpaid(handle_unpaid)      # handler(payment, reason)
    hooks.on_refund_issued(handle_refund)       # handler(refund)
    hooks.on_refund_counted_changed(follow)     # handler(refund)
    hooks.on_payment_event(record_event)        # handler(session_id, event_kind, *, actor, data)
    hooks.on_payment_settled(handle_settled)    # handler(payment)  (promotions: vouchers)

Unlike mitras.hooks these run INSIDE the payments transaction, in the thread that made the
change, and their exceptions propagate: a `Conflict` raised by an invoice handler is how the
payment side learns the session could not take the money (it then flags and refunds). So a
handler decides in Postgres under the locks already held and defers every side effect (pushes,
live events) to `transaction.on_commit`.
"""

_paid = []
_unpaid = []
_refund_issued = []
_refund_counted_changed = []
_payment_event = []
_settled = []


def _register(handlers, handler):
    if handler not in handlers:
        handlers.append(handler)
    return handler


def on_invoice_paid(handler):
    """Register `handler(payment)`; usable as a decorator. Registering twice is a no-op."""
    return _register(_paid, handler)


def on_invoice_unpaid(handler):
    """Register `handler(payment, reason)`; usable as a decorator. Registering twice is a no-op."""
    return _register(_unpaid, handler)


def on_refund_issued(handler):
    """Register `handler(refund)`; usable as a decorator. Registering twice is a no-op."""
    return _register(_refund_issued, handler)


def on_refund_counted_changed(handler):
    """Register `handler(refund)`; usable as a decorator. Registering twice is a no-op."""
    return _register(_refund_counted_changed, handler)


def on_payment_event(handler):
    """Register `handler(session_id, event_kind, *, actor, data)`: a payment fact for the session's
    timeline (paid, flagged, refund created/settled). Registering twice is a no-op."""
    return _register(_payment_event, handler)


def on_payment_settled(handler):
    """Register `handler(payment)`: a pending payment of any kind (session or extension) left
    `pending` — paid, expired or failed; `payment.status` says which. Registering twice is a
    no-op."""
    return _register(_settled, handler)


def payment_settled(payment):
    """A pending payment became paid, expired or failed. Precondition: inside the callback's
    transaction, the payment row locked (after its session's), before the invoice hooks run."""
    for handler in list(_settled):
        handler(payment)


def invoice_paid(payment):
    """The invoice of `payment` (kind session or extension) was paid.

    Precondition: inside the callback's transaction, with the payment's session row locked first
    and then the payment row (the lock order of the session services). A handler raises Conflict
    when the session can no longer use the money."""
    for handler in list(_paid):
        handler(payment)


def invoice_unpaid(payment, reason):
    """The invoice of a session payment expired or failed before it was paid.

    Precondition: inside the callback's transaction, with the payment's session row locked first
    and then the payment row. A handler raises Conflict when the session already moved on."""
    for handler in list(_unpaid):
        handler(payment, reason)


def refund_issued(refund):
    """The money of `refund` went back to the client (Xendit said so, or staff settled it).

    Precondition: inside the transaction that settled the refund, with the refund row locked.
    Handlers defer what they do (a push) to after commit."""
    for handler in list(_refund_issued):
        handler(refund)


def refund_counted_changed(refund):
    """What counts as refunded on the refund's session changed: `refund` was created (it counts
    from then on) or failed (it no longer counts). The earnings ledger follows the client's net.

    Precondition: inside the transaction that made the change, the refund row saved; the session
    row locked before the payment and refund rows (refund_create's callers, refund_retry), or
    locked by the handler after the refund (a refund callback: nothing locks a session and then
    an existing refund, so this order cannot deadlock)."""
    for handler in list(_refund_counted_changed):
        handler(refund)


def payment_event(session_id, event_kind, *, actor=None, data):
    """A payment fact for the session's timeline. Precondition: inside the transaction that
    made the change (the row is written with it, or not at all)."""
    for handler in list(_payment_event):
        handler(session_id, event_kind, actor=actor, data=data)
