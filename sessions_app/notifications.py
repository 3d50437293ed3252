"""Pushes about sessions (FCM through halobestie/push.py), sent after commit and off the
request path. Texts in Indonesian; never a message body (privacy)."""

from halobestie import push


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
