"""Push notifications. Without FIREBASE_SERVICE_ACCOUNT_PATH this is the log-only sender (it
logs that a push would go out, never its text's personal parts); the FCM sender replaces it
when configured."""

import logging

logger = logging.getLogger(__name__)


def send_to_user(*, user_id, title: str, body: str, data: dict, high_priority: bool = False):
    """Push to every device of the user. Never raises: a push is best effort."""
    logger.info("push (log-only sender)", extra={"user_id": user_id, "push_type": data.get("type")})
