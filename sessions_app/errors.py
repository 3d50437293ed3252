"""The sessions app's error types (each a ServiceError: the one error envelope, halobestie/errors.py)."""

from halobestie.errors import Conflict, Forbidden, NotFound


class SessionNotFound(NotFound):
    """The session does not exist, or the caller may not know it does (no existence leak)."""

    code = "session_not_found"
    detail = "Sesi tidak ditemukan."


class SessionNotActive(Conflict):
    code = "session_not_active"
    detail = "Sesi tidak sedang berlangsung; pesan tidak bisa dikirim."


class NotParticipant(Forbidden):
    code = "not_participant"
    detail = "Kamu bukan peserta sesi ini."
