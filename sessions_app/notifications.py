"""Pushes about sessions (FCM through halobestie/integrations/push.py), sent after commit and off the
request path. Texts in Indonesian; never a message body (privacy).

Call these from a `transaction.on_commit` callback: they only enqueue (see push.send_to_user), so
they never slow or fail the caller. The push types and data keys are listed in docs/push.md."""

from halobestie.integrations import push


def offer_made(*, session, mitra_user_id):
    push.send_to_user(
        user_id=mitra_user_id,
        title="Ada yang ingin curhat",
        body="Buka aplikasi untuk menerima sesi baru.",
        data={"type": "session.offer", "session_id": str(session.id)},
        high_priority=True,
    )


def session_started(*, session):
    push.send_to_user(
        user_id=session.client_id,
        title="Bestie-mu sudah siap",
        body="Sesi curhatmu dimulai sekarang.",
        data={"type": "session.started", "session_id": str(session.id)},
        high_priority=True,
    )


def ending_soon(*, session):
    push.send_to_user(
        user_id=session.client_id,
        title="Sesi hampir selesai",
        body="Waktu sesimu tinggal sebentar. Perpanjang jika masih ingin bercerita.",
        data={"type": "session.ending_soon", "session_id": str(session.id)},
        high_priority=False,
    )


def new_message(*, session, recipient_user_id):
    push.send_to_user(
        user_id=recipient_user_id,
        title="Pesan baru",
        body="Bestie-mu mengirim pesan"
        if recipient_user_id == session.client_id
        else "Klienmu mengirim pesan",
        data={"type": "message.new", "session_id": str(session.id)},
        high_priority=True,
    )


def session_ended(*, session):
    """To the client, unless the client ended it themselves (they already know)."""
    if session.ended_by_id is not None and session.ended_by_id == session.client_id:
        return
    push.send_to_user(
        user_id=session.client_id,
        title="Sesi selesai",
        body="Sesi curhatmu sudah berakhir. Beri nilai untuk Bestie-mu, yuk.",
        data={"type": "session.ended", "session_id": str(session.id)},
        high_priority=False,
    )


def refund_issued(*, session, amount_idr: int):
    """To the client: a refund of `amount_idr` (integer rupiah) for the session was issued."""
    amount = f"Rp{amount_idr:,}".replace(",", ".")
    push.send_to_user(
        user_id=session.client_id,
        title="Dana dikembalikan",
        body=f"Pengembalian dana {amount} untuk sesimu sudah diproses.",
        data={"type": "refund.issued", "session_id": str(session.id), "amount_idr": str(amount_idr)},
        high_priority=False,
    )
