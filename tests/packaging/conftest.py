"""The realtime tests' active-session builder, reused here (sessions built through the services)."""

from tests.realtime.conftest import active_session  # noqa: F401
