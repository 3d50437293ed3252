import asyncio

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = _("Chat sessions")

    def ready(self):
        from halobestie.server.lifespan import on_startup
        from mitras.hooks import on_mitra_available, on_mitra_deactivated
        from sessions_app import booking_admin, events, fast_reads  # noqa: F401 (booking_admin registers Booking)
        from sessions_app.lifecycle import sessions_release_deactivated_mitra
        from sessions_app.matching import mitra_available_dispatch

        # A session's state and its messages answered before Django (issue 22).
        fast_reads.register()
        # A mitra came online or got a free slot: offer waiting sessions at once.
        on_mitra_available(mitra_available_dispatch)
        # Staff deactivated a mitra: its offers go to others, its active sessions end.
        on_mitra_deactivated(sessions_release_deactivated_mitra)
        # ... and its bookings not yet started are cancelled and refunded (issue 25).
        from sessions_app.bookings import bookings_cancel_for_deactivated_mitra

        on_mitra_deactivated(bookings_cancel_for_deactivated_mitra)

        # ... and its sockets close at once (4003), on every server process.
        on_mitra_deactivated(_close_mitra_sockets)

        from payments import hooks as payment_hooks
        from sessions_app.lifecycle import (
            payment_event_record,
            payment_invoice_paid,
            payment_invoice_unpaid,
            payment_refund_issued,
        )

        # Payments announce; sessions decide (payments imports nothing of sessions_app).
        payment_hooks.on_invoice_paid(payment_invoice_paid)
        payment_hooks.on_invoice_unpaid(payment_invoice_unpaid)
        payment_hooks.on_refund_issued(payment_refund_issued)
        # Refunded money changed (a refund made, or failed): the earnings ledger follows.
        from sessions_app.settlement import ledger_follow_refund

        payment_hooks.on_refund_counted_changed(ledger_follow_refund)
        payment_hooks.on_payment_event(payment_event_record)

        from halobestie.accounts.hooks import on_client_deleted, on_client_erasing
        from sessions_app.erasure import client_data_erase

        # A client erased their account: transcripts, comments and report texts go with it (same
        # transaction); after commit their open session ends (refunded if paid), sockets close.
        on_client_erasing(client_data_erase)
        on_client_deleted(_end_sessions_of_deleted_client)

        from sessions_app import realtime

        # The public listener watches its channel layer (Valkey restarts) from the start.
        on_startup(realtime.on_server_start)

        @on_startup
        async def bind_events_loop(listener):
            events.bind_loop(asyncio.get_running_loop())


# apps.py is imported before the app registry is ready: what it needs of models and services is
# imported inside ready() and inside these handlers (which run only after start-up).


def _close_mitra_sockets(mitra_id):
    from mitras.models import Mitra
    from sessions_app import events

    events.close_user_sockets(Mitra.objects.filter(pk=mitra_id).values_list("user_id", flat=True).first())


def _end_sessions_of_deleted_client(user_id):
    from halobestie.accounts.models import User
    from sessions_app import events
    from sessions_app.bookings import bookings_cancel_for_deleted_client
    from sessions_app.erasure import client_data_erase
    from sessions_app.lifecycle import sessions_cancel_for_deleted_client

    client = User.objects.filter(pk=user_id).first()
    if client is not None:
        bookings_cancel_for_deleted_client(user_id)
        sessions_cancel_for_deleted_client(client=client)
        # A message may have arrived between the erasure and the end of the open session.
        client_data_erase(user_id)
    events.close_user_sockets(user_id)
