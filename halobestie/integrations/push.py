"""Push notifications through Firebase Cloud Messaging (firebase-admin).

Two senders behind one call, `send_to_user`:
- with FIREBASE_SERVICE_ACCOUNT_PATH set, the FCM sender: firebase-admin initialised once per
  process (at start-up, from `HalobestieConfig.ready`), and a small background worker (a daemon
  thread behind a bounded queue) that looks up the user's devices and sends. `send_to_user` only
  enqueues, so a slow or failing FCM never slows or fails a request; when the queue is full the
  push is dropped and counted (`halobestie_pushes_total{outcome="dropped"}`).
- without it, the log-only sender: one log line with the push type and the user id, never a text.

Every push is a data message (all values strings, see docs/push.md): the Android app renders it
itself, with Android priority high for offers and chat; iOS gets an APNs alert with the same
title and body. Tokens FCM reports dead (unregistered, another sender's, invalid) are deleted.

Start-up refuses (ImproperlyConfigured) a path that does not exist or is not a service-account
key, and a service account of another Firebase project than FIREBASE_PROJECT_ID: the runbook's
trap, where pushes would otherwise silently go nowhere.
"""

import atexit
import contextlib
import itertools
import json
import logging
import queue
import threading
import warnings
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from halobestie.accounts.models import Device
from halobestie.server import metrics

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
# firebase-admin's own default is 120 s; a push that has not gone out in 10 s is better retried
# by the next event than allowed to hold the single worker.
FCM_TIMEOUT_SECONDS = 10.0
_SERVICE_ACCOUNT_KEYS = ("project_id", "private_key", "client_email")

# firebase-admin 7.x deprecates Message.token for Message.fid (a Firebase installation id). The
# apps register FCM registration tokens (accounts.Device), which FCM v1 still addresses as
# `message.token`; switching needs the apps to send installation ids first.
warnings.filterwarnings("ignore", message="Message.token is deprecated", category=DeprecationWarning)

# Defined with every other metric (docs/metrics.md): halobestie_pushes_total{outcome}.
PUSHES = metrics.PUSHES


def send_to_user(*, user_id, title: str, body: str, data: dict, high_priority: bool = False):
    """Push to every device of the user. Never raises and never blocks on the network: a push is
    best effort. Call it after commit (`transaction.on_commit`). `data` values become strings;
    `title` and `body` must not contain personal data beyond what the user may see on a lock
    screen (never a chat message body)."""
    try:
        _sender.send(user_id=user_id, title=title, body=body, data=data, high_priority=high_priority)
    except Exception:
        logger.exception("push could not be queued", extra={"user_id": user_id})


def flush(timeout: float = 5.0) -> bool:
    """Wait until every queued push has been handled (tests, graceful shutdown). True when idle."""
    return _sender.flush(timeout)


def dropped_count() -> int:
    """Pushes dropped in this process because the queue was full."""
    return _sender.dropped


# Configuration -------------------------------------------------------------------------------


def load_service_account(*, path: str, project_id: str) -> dict:
    """Read and check the service-account key: it must exist, be a service-account JSON, and
    belong to `project_id`. Raises ImproperlyConfigured naming the variable at fault."""
    file = Path(path)
    if not file.is_file():
        raise ImproperlyConfigured(f"FIREBASE_SERVICE_ACCOUNT_PATH={path!r}: no such file.")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"FIREBASE_SERVICE_ACCOUNT_PATH={path!r} is not a readable JSON file ({type(exc).__name__})."
        ) from None
    if (
        not isinstance(info, dict)
        or info.get("type") != "service_account"
        or not all(isinstance(info.get(key), str) and info.get(key) for key in _SERVICE_ACCOUNT_KEYS)
    ):
        raise ImproperlyConfigured(
            f"FIREBASE_SERVICE_ACCOUNT_PATH={path!r} is not a Firebase service-account key "
            '(a JSON object with "type": "service_account", project_id, private_key, client_email).'
        )
    if not project_id:
        raise ImproperlyConfigured(
            "FIREBASE_SERVICE_ACCOUNT_PATH is set but FIREBASE_PROJECT_ID is empty: set it to the "
            "Firebase project the apps are built for, so that start-up can check the service account."
        )
    if info["project_id"] != project_id:
        raise ImproperlyConfigured(
            f"The service account in FIREBASE_SERVICE_ACCOUNT_PATH belongs to Firebase project "
            f"{info['project_id']!r}, but FIREBASE_PROJECT_ID is {project_id!r}: pushes would "
            f"silently go nowhere. Mount a service-account key of project {project_id!r}."
        )
    return info


def configure(
    *,
    service_account_path: str,
    project_id: str,
    timeout_seconds: float = FCM_TIMEOUT_SECONDS,
    queue_size: int = QUEUE_SIZE,
):
    """Switch this process to the FCM sender (replacing, and stopping, the current one).
    Raises ImproperlyConfigured on a bad key or a project mismatch (see load_service_account)."""
    info = load_service_account(path=service_account_path, project_id=project_id)
    _install(_FcmSender(service_account=info, timeout_seconds=timeout_seconds, queue_size=queue_size))
    global _shutdown_registered
    if not _shutdown_registered:
        # Daemon threads die with the interpreter; atexit runs first (every process: servers,
        # scheduler, management commands).
        atexit.register(shutdown)
        _shutdown_registered = True


def configure_log_only():
    """Switch this process to the log-only sender at once (the FCM one, if any, stops after the
    pushes already queued, without waiting for them)."""
    _install(_LogOnlySender())


def shutdown(timeout: float = 3.0):
    """Give the pushes already queued up to `timeout` seconds to go out, then stop the worker
    (log-only from then on). Runs at interpreter exit, so an offer queued just before SIGTERM
    is not lost."""
    _install(_LogOnlySender(), timeout=timeout)


def configure_from_settings():
    """At start-up: the FCM sender when FIREBASE_SERVICE_ACCOUNT_PATH is set, else log-only.
    PUSH_ENABLED=false is log-only on purpose, said at start-up (settings refuse an empty path
    with DEBUG off unless pushes are disabled so)."""
    if not settings.PUSH_ENABLED:
        logger.warning("pushes disabled (PUSH_ENABLED=false): pushes are only logged")
        configure_log_only()
    elif settings.FIREBASE_SERVICE_ACCOUNT_PATH:
        configure(
            service_account_path=settings.FIREBASE_SERVICE_ACCOUNT_PATH,
            project_id=settings.FIREBASE_PROJECT_ID,
        )
    else:
        configure_log_only()


def _install(sender, *, timeout=0.0):
    global _sender
    previous, _sender = _sender, sender
    previous.close(timeout)


# Senders -------------------------------------------------------------------------------------


class _LogOnlySender:
    dropped = 0

    def send(self, *, user_id, title, body, data, high_priority):
        # Type and user only: titles and bodies may name people.
        PUSHES.labels(outcome="logged").inc()
        logger.info("push (log-only sender)", extra={"user_id": user_id, "push_type": data.get("type")})

    def flush(self, timeout):
        return True

    def close(self, timeout=0.0):
        pass


_STOP = object()
_app_numbers = itertools.count(1)


class _FcmSender:
    def __init__(self, *, service_account: dict, timeout_seconds: float, queue_size: int):
        # firebase-admin is heavy and optional: imported only when FCM is configured.
        import firebase_admin
        from firebase_admin import credentials

        try:
            credential = credentials.Certificate(service_account)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"FIREBASE_SERVICE_ACCOUNT_PATH: the service-account key cannot be used ({exc})."
            ) from None
        # A named app of our own: reconfiguring (tests) never collides with the default app.
        self.app = firebase_admin.initialize_app(
            credential,
            options={"projectId": service_account["project_id"], "httpTimeout": timeout_seconds},
            name=f"halobestie-push-{next(_app_numbers)}",
        )
        self.dropped = 0
        self._queue = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread = None
        self._closed = False

    def send(self, *, user_id, title, body, data, high_priority):
        job = {
            "user_id": user_id,
            "title": title,
            "body": body,
            "data": {str(key): str(value) for key, value in data.items()},
            "high_priority": high_priority,
        }
        self._ensure_worker()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            PUSHES.labels(outcome="dropped").inc()
            logger.warning(
                "push dropped: queue full", extra={"user_id": user_id, "push_type": job["data"].get("type")}
            )

    def flush(self, timeout):
        # Queue.join() has no timeout; this is the same wait on the queue's own condition.
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout=0.0):
        """Stop the worker after the pushes already queued, waiting up to `timeout` seconds."""
        import firebase_admin

        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            self._closed = True  # no room for the marker: stop after the current push
        thread = self._thread
        if timeout and thread is not None and thread.is_alive():
            thread.join(timeout)
        with contextlib.suppress(ValueError):  # already deleted
            firebase_admin.delete_app(self.app)

    def _ensure_worker(self):
        # Started on first use, not at import: a server that forks after start-up would
        # otherwise carry a dead thread into its workers.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="push-worker", daemon=True)
                self._thread.start()

    def _run(self):
        while True:
            job = self._queue.get()
            try:
                if job is _STOP or self._closed:
                    return
                self._deliver(job)
            except Exception:
                logger.exception("push failed", extra={"user_id": job["user_id"]})
            finally:
                self._queue.task_done()

    def _deliver(self, job):
        from firebase_admin import messaging  # optional heavy dependency: only with FCM configured

        try:
            devices = list(Device.objects.filter(user_id=job["user_id"]).values_list("id", "token"))
        finally:
            # Never hold a database connection while waiting on FCM.
            connections.close_all()
        push_type = job["data"].get("type")
        if not devices:
            logger.info("push skipped: no device", extra={"user_id": job["user_id"], "push_type": push_type})
            return
        # send_each takes at most 500 messages; a user has a handful of devices.
        devices = devices[:500]
        messages = [build_message(token=token, **_message_fields(job)) for _, token in devices]
        batch = messaging.send_each(messages, app=self.app)
        dead = []
        for (device_id, token), response in zip(devices, batch.responses, strict=True):
            if response.success:
                PUSHES.labels(outcome="sent").inc()
            elif is_dead_token_error(response.exception):
                dead.append(token)
            else:
                PUSHES.labels(outcome="failed").inc()
                logger.warning(
                    "push failed",
                    extra={
                        "user_id": job["user_id"],
                        "device_id": device_id,
                        "push_type": push_type,
                        "error": type(response.exception).__name__,
                        "error_code": getattr(response.exception, "code", None),
                    },
                )
        if dead:
            try:
                pruned, _ = Device.objects.filter(token__in=dead).delete()
            finally:
                connections.close_all()
            PUSHES.labels(outcome="pruned").inc(len(dead))
            logger.info("push: dead tokens deleted", extra={"user_id": job["user_id"], "count": pruned})


def _message_fields(job):
    return {key: job[key] for key in ("title", "body", "data", "high_priority")}


def build_message(*, token: str, title: str, body: str, data: dict, high_priority: bool):
    """One FCM message: a data message (title and body travel in `data` for the Android app to
    render), Android priority high for offers and chat; for iOS an APNs alert with the same
    texts (iOS shows nothing for a data-only push in the background)."""
    from firebase_admin import messaging

    return messaging.Message(
        token=token,
        data={**data, "title": title, "body": body},
        android=messaging.AndroidConfig(priority="high" if high_priority else "normal"),
        apns=messaging.APNSConfig(
            # 10: deliver now; 5: may be batched to save the battery (APNs' own values).
            headers={"apns-push-type": "alert", "apns-priority": "10" if high_priority else "5"},
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    alert=messaging.ApsAlert(title=title, body=body),
                    sound="default" if high_priority else None,
                )
            ),
        ),
    )


def is_dead_token_error(error) -> bool:
    """FCM says this token will never deliver: unregistered (app uninstalled, token rotated),
    registered to another sender (another Firebase project), or not a valid token at all."""
    from firebase_admin import exceptions, messaging

    if isinstance(error, (messaging.UnregisteredError, messaging.SenderIdMismatchError)):
        return True
    if isinstance(error, exceptions.InvalidArgumentError):
        return _names_the_token(error)
    return False


def _names_the_token(error) -> bool:
    """An INVALID_ARGUMENT is about the token only when FCM says so: a BadRequest field violation
    on `message.token`, or its message about the registration token. Any other invalid argument
    is our own payload's fault, and the device must stay."""
    response = getattr(error, "http_response", None)
    try:
        details = response.json()["error"].get("details", []) if response is not None else []
    except (ValueError, KeyError, TypeError, AttributeError):
        details = []
    for detail in details:
        for violation in (detail or {}).get("fieldViolations", []) or []:
            if (violation or {}).get("field") == "message.token":
                return True
    return "registration token" in str(error).lower()


_sender = _LogOnlySender()
_shutdown_registered = False
