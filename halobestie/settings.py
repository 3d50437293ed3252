"""One settings module for every environment, read from the environment (django-environ).

Every variable read here is listed, with a comment, in `.env.example`. A malformed value stops
start-up with an ImproperlyConfigured naming the variable. With DEBUG off, start-up refuses a
missing or default secret, so a production instance can never run on the development keys.
"""

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_env = environ.Env()
# A local `.env` (never committed) is read when present; real environment variables win.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

_UNSET = object()


def env(name, cast=str, default=_UNSET):
    """Read one variable with a type; fail loudly, naming the variable, on a bad value."""
    reader = {
        str: _env.str,
        bool: _env.bool,
        int: _env.int,
        float: _env.float,
        list: _env.list,
    }[cast]
    try:
        if default is _UNSET:
            return reader(name)
        return reader(name, default=default)
    except ImproperlyConfigured:
        raise
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} has a malformed value: {exc}") from exc


DEV_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"

DEBUG = env("DEBUG", bool, False)
# Under pytest the development secrets are allowed and Valkey keys get a per-run prefix.
TESTING = env("TESTING", bool, "pytest" in sys.modules)


def secret(name):
    """A secret: a development default under DEBUG, refused when missing or default otherwise."""
    value = env(name, str, "")
    if not value or value == DEV_SECRET:
        if DEBUG or TESTING:
            return DEV_SECRET
        raise ImproperlyConfigured(
            f"Environment variable {name} must be set to a real secret when DEBUG is off."
        )
    if len(value) < 32 and not (DEBUG or TESTING):
        raise ImproperlyConfigured(f"Environment variable {name} must be at least 32 characters.")
    return value


SECRET_KEY = secret("DJANGO_SECRET_KEY")
AUTH_JWT_SECRET = secret("AUTH_JWT_SECRET")

ALLOWED_HOSTS = env("ALLOWED_HOSTS", list, ["*"] if DEBUG else ["localhost", "127.0.0.1"])
CC_ORIGIN = env("CC_ORIGIN", str, "")
CSRF_TRUSTED_ORIGINS = [CC_ORIGIN] if CC_ORIGIN else []
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", str, "http://127.0.0.1:3000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "halobestie.admin_site.ControlCenterAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "halobestie",
    "halobestie.accounts",
    "halobestie.runtime",
    "halobestie.audit",
    "halobestie.legacy",
    "mitras",
    "sessions_app",
    "payments",
    "promotions",
]

MIDDLEWARE = [
    # Django's built-ins are used through halobestie/server/inline_builtins.py: under ASGI their
    # hooks that do no I/O run on the event loop instead of a thread hop each (issue 22).
    "halobestie.server.middleware.RequestIdMiddleware",
    # NUL bytes and lone surrogates in the path or the query string: 400 before any view.
    "halobestie.server.middleware.HostileInputMiddleware",
    # "Try it out" in the internal API docs calls the public API from CC_ORIGIN.
    "halobestie.server.middleware.ApiDocsCorsMiddleware",
    "halobestie.server.listeners.ListenerUrlconfMiddleware",
    "halobestie.server.inline_builtins.SecurityMiddleware",
    "halobestie.server.inline_builtins.SessionMiddleware",
    "halobestie.server.language.LanguageMiddleware",
    "halobestie.server.inline_builtins.CommonMiddleware",
    "halobestie.server.inline_builtins.CsrfViewMiddleware",
    "halobestie.server.inline_builtins.AuthenticationMiddleware",
    "halobestie.server.inline_builtins.MessageMiddleware",
    "halobestie.server.inline_builtins.XFrameOptionsMiddleware",
    # Last, so it sees a view's exception first: a database outage is a 503, not a 500.
    "halobestie.errors.DatabaseUnavailableMiddleware",
]

# The public URLconf is the default: a request that is not known to come from the internal
# listener can never reach the admin.
ROOT_URLCONF = "halobestie.urls_public"
INTERNAL_URLCONF = "halobestie.urls_internal"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "halobestie.asgi.public_application"

# Database: PostgreSQL in tests and production; with no DATABASE_URL, a SQLite file so that a
# newcomer can run the project with nothing installed but Python.
DATABASE_URL = env("DATABASE_URL", str, "")
if DATABASE_URL:
    try:
        _database = _env.db_url_config(DATABASE_URL)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"Environment variable DATABASE_URL is malformed: {exc}") from exc
else:
    # SQLite is one writer at a time. Set up for what `make run` does (two listeners, the
    # scheduler, concurrent requests): every transaction takes the write lock when it begins
    # (IMMEDIATE: a deferred one that upgrades to a write fails at once with "database is
    # locked" when another holds it, whatever the timeout), waits up to SQLITE_BUSY_TIMEOUT
    # seconds for it, and WAL lets readers go on while one writes.
    SQLITE_PATH = Path(env("SQLITE_PATH", str, "") or BASE_DIR / "var" / "db.sqlite3")
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    _sqlite_timeout = env("SQLITE_BUSY_TIMEOUT", float, 30.0)
    _database = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(SQLITE_PATH),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": _sqlite_timeout,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                f"PRAGMA busy_timeout={int(_sqlite_timeout * 1000)}; PRAGMA temp_store=MEMORY"
            ),
        },
    }
if _database["ENGINE"] == "django.db.backends.postgresql":
    _database.setdefault("OPTIONS", {})
    if env("DATABASE_POOL", bool, True):
        # Django's psycopg pool: ASGI serves sync views from a thread pool, so connections are
        # shared through a bounded pool instead of one per thread.
        _database["OPTIONS"]["pool"] = {
            "min_size": env("DATABASE_POOL_MIN", int, 1),
            "max_size": env("DATABASE_POOL_MAX", int, 20),
            "timeout": env("DATABASE_POOL_TIMEOUT", float, 5.0),
        }
        # Check a pooled connection before lending it: after a PostgreSQL restart every idle
        # connection in the pool is dead, and without the check each would fail one request.
        _database["CONN_HEALTH_CHECKS"] = True
    _database["OPTIONS"].setdefault("connect_timeout", env("DATABASE_CONNECT_TIMEOUT", int, 3))
    # A request waiting on a row lock (or a statement running) longer than this fails with its own
    # answer (503 database_timeout, halobestie/errors.py) instead of holding a worker; 0: no limit.
    _server_options = {
        "lock_timeout": env("DATABASE_LOCK_TIMEOUT_MS", int, 10_000),
        "statement_timeout": env("DATABASE_STATEMENT_TIMEOUT_MS", int, 0),
    }
    _database["OPTIONS"]["options"] = " ".join(
        f"-c {name}={value}" for name, value in _server_options.items()
    )
_test_database_name = env("TEST_DATABASE_NAME", str, "test_halobestie")
if _test_database_name:
    _database["TEST"] = {"NAME": _test_database_name}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# A Bestie's one-time password reset link (halobestie/accounts/staff.py) lives this long.
PASSWORD_RESET_TIMEOUT = 24 * 60 * 60

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Valkey (Redis protocol): the hot read path and pub/sub. Without VALKEY_URL the channel layer
# is in-memory and the availability mirror is off (every reader uses Postgres).
VALKEY_URL = env("VALKEY_URL", str, "")
CHANNEL_LAYER_PREFIX = env("CHANNEL_LAYER_PREFIX", str, "halobestie")
VALKEY_KEY_PREFIX = env("VALKEY_KEY_PREFIX", str, f"test{os.getpid()}:" if TESTING else "")
if TESTING and "CHANNEL_LAYER_PREFIX" not in os.environ:
    CHANNEL_LAYER_PREFIX = f"halobestie-{VALKEY_KEY_PREFIX}"
if VALKEY_URL:
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer: measured here, the list-based layer dropped most messages at
            # 1,000 msg/s while this one lost none (SPEC.md). Ours adds concurrent publishing, one
            # round trip per chat message and bounded socket queues (sessions_app/layer.py).
            "BACKEND": "sessions_app.layer.UserGroupLayer",
            "CONFIG": {"hosts": [VALKEY_URL], "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# The timers (halobestie/scheduler.py) inside the public process, as a task of its event loop:
# the embedded default, where the in-memory layer reaches only the sockets of its own process.
# With Valkey, production runs `manage.py run_scheduler` as its own process instead.
SCHEDULER_IN_PROCESS = env("SCHEDULER_IN_PROCESS", bool, not VALKEY_URL)

# Realtime chat: the async psycopg pool that stores messages (sessions_app/chat_store.py), one per
# server process, and the per-socket limits (sessions_app/consumers.py).
REALTIME_DB_POOL_MIN = env("REALTIME_DB_POOL_MIN", int, 1)
REALTIME_DB_POOL_MAX = env("REALTIME_DB_POOL_MAX", int, 10)
REALTIME_DB_POOL_TIMEOUT = env("REALTIME_DB_POOL_TIMEOUT", float, 10.0)
# At most this many message transactions in flight per process; messages arriving meanwhile are
# stored together by the next free one (group commit, sessions_app/chat_store.py). While a process
# stores without a pause, the next batch first waits REALTIME_DB_BATCH_WINDOW_MS for more to join
# (0: no window); a quiet process stores a lone message at once.
REALTIME_DB_WRITERS = env("REALTIME_DB_WRITERS", int, 2)
REALTIME_DB_BATCH_WINDOW_MS = env("REALTIME_DB_BATCH_WINDOW_MS", float, 3.0)
REALTIME_MESSAGES_PER_SECOND = env("REALTIME_MESSAGES_PER_SECOND", float, 5.0)
REALTIME_MESSAGES_BURST = env("REALTIME_MESSAGES_BURST", int, 20)
REALTIME_FRAMES_PER_SECOND = env("REALTIME_FRAMES_PER_SECOND", float, 20.0)
REALTIME_FRAMES_BURST = env("REALTIME_FRAMES_BURST", int, 60)
# Overload (issue 22): at most this many frames wait for one socket (past it the socket is closed
# with 1013 and the app resyncs); at most this many Valkey connections per process for the chat's
# publishing and rate/presence keys (a burst waits for one); past this event-loop lag or wait for
# a database connection (ms) a process refuses new messages with `overloaded` (not stored, not
# acked: the app resends).
REALTIME_SOCKET_QUEUE = env("REALTIME_SOCKET_QUEUE", int, 1000)
REALTIME_VALKEY_CONNECTIONS = env("REALTIME_VALKEY_CONNECTIONS", int, 32)
REALTIME_OVERLOAD_MS = env("REALTIME_OVERLOAD_MS", float, 1500.0)
# Per user, across every process: open sockets (more: closed with 4029 `too_many_sockets`), and
# how often an open socket re-checks its account and token (deactivated, deleted, revoked).
REALTIME_MAX_SOCKETS_PER_USER = env("REALTIME_MAX_SOCKETS_PER_USER", int, 5)
REALTIME_USER_RECHECK_SECONDS = env("REALTIME_USER_RECHECK_SECONDS", float, 60.0)

# Bahasa Indonesia unless the user chose English with the control center's language switch (the
# `django_language` cookie; halobestie/server/language.py, never Accept-Language). Our texts are
# English msgids translated by locale/id (scripts/messages.py, `make messages`). Stored times are
# UTC (USE_TZ); shown in Asia/Jakarta, with seconds and the zone (halobestie/formats/).
LANGUAGE_CODE = "id"
LANGUAGES = [("id", "Bahasa Indonesia"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["halobestie.formats"]
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "Asia/Jakarta"
USE_I18N = True
USE_TZ = True

# Seconds a process keeps the runtime config before re-reading it; saves invalidate at once over
# Valkey pub/sub, so this only bounds staleness while Valkey is down.
RUNTIME_CONFIG_CACHE_SECONDS = env("RUNTIME_CONFIG_CACHE_SECONDS", float, 5.0)
# The fast routes (halobestie/server/fastpath.py: the beacon, the public config) keep their answer
# in process memory this long, and serve the last one for up to FAST_ROUTE_STALE_SECONDS while it
# cannot be rebuilt (Valkey and Postgres both down).
FAST_ROUTES_ENABLED = env("FAST_ROUTES_ENABLED", bool, True)
FAST_ROUTE_CACHE_SECONDS = env("FAST_ROUTE_CACHE_SECONDS", float, 1.0)
FAST_ROUTE_STALE_SECONDS = env("FAST_ROUTE_STALE_SECONDS", float, 30.0)
# Threads per process for the CPU-heavy views (password hashing at login and OTP verification),
# off the single thread every other sync view shares (halobestie/server/offload.py).
CPU_VIEW_THREADS = env("CPU_VIEW_THREADS", int, 4)
# Database connections per process for the authenticated fast reads (a session's state, its
# messages), read on the event loop (halobestie/db/async_reads.py).
FAST_READ_CONNECTIONS = env("FAST_READ_CONNECTIONS", int, 4)

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Request bodies: the apps send small JSON; anything larger is refused early.
DATA_UPLOAD_MAX_MEMORY_SIZE = env("MAX_REQUEST_BODY_BYTES", int, 64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The old backend's tokens during the cutover window (docs/cutover.md); steps aside for ours.
        "halobestie.legacy.authentication.LegacyJWTAuthentication",
        "halobestie.accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON with a depth limit and no NUL or lone surrogate in any string (halobestie/server/safe_input.py).
    "DEFAULT_PARSER_CLASSES": ["halobestie.server.safe_input.SafeJSONParser"],
    "EXCEPTION_HANDLER": "halobestie.errors.api_exception_handler",
    # Reads and writes per person per minute (halobestie/server/throttles.py), except where a view has
    # a limit of its own (OTP, mitra login) or another authentication (Xendit's webhooks).
    "DEFAULT_THROTTLE_CLASSES": ["halobestie.server.throttles.PersonRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "halobestie.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 20,
}

# Per-person API limits (halobestie/server/throttles.py); 0: off. Off by default only under tests (the
# suite shares one client address); the throttle tests set them.
API_THROTTLE_READS_PER_MINUTE = env("API_THROTTLE_READS_PER_MINUTE", int, 0 if TESTING else 300)
API_THROTTLE_WRITES_PER_MINUTE = env("API_THROTTLE_WRITES_PER_MINUTE", int, 0 if TESTING else 60)

# A rotated refresh token sent again within this many seconds gets the same successor pair (an
# app's foreground and background refreshing at once); later, it revokes its whole family.
AUTH_REFRESH_REUSE_LEEWAY_SECONDS = env("AUTH_REFRESH_REUSE_LEEWAY_SECONDS", int, 10)

SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": AUTH_JWT_SECRET,
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env("AUTH_ACCESS_TOKEN_SECONDS", int, 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env("AUTH_REFRESH_TOKEN_SECONDS", int, 30 * 86400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# Passwords: new ones with Django's default (PBKDF2). Plain bcrypt is here for the Besties'
# hashes imported from the Node backend (`bcrypt$` + the `$2b$…` hash, docs/cutover.md): they verify as they
# are and are re-hashed with the default at the next successful login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

# Cutover from the Node backend (docs/cutover.md): its tokens (HS256, signed with its old
# AUTH_JWT_SECRET) stay usable until LEGACY_JWT_ACCEPT_UNTIL for users that were imported; after
# that they are refused with `legacy_token_expired`. Empty secret: old tokens are plain invalid.
LEGACY_JWT_SECRET = env("LEGACY_JWT_SECRET", str, "")
LEGACY_JWT_ACCEPT_UNTIL = env("LEGACY_JWT_ACCEPT_UNTIL", str, "")
LEGACY_JWT_USER_CLAIM = env("LEGACY_JWT_USER_CLAIM", str, "sub")
LEGACY_JWT_ROLE_CLAIM = env("LEGACY_JWT_ROLE_CLAIM", str, "role")
LEGACY_JWT_ROLE_CLIENT = env("LEGACY_JWT_ROLE_CLIENT", str, "client")
LEGACY_JWT_ROLE_MITRA = env("LEGACY_JWT_ROLE_MITRA", str, "mitra")
LEGACY_JWT_TYPE_CLAIM = env("LEGACY_JWT_TYPE_CLAIM", str, "type")
LEGACY_JWT_ACCESS_TYPE = env("LEGACY_JWT_ACCESS_TYPE", str, "access")
LEGACY_JWT_REFRESH_TYPE = env("LEGACY_JWT_REFRESH_TYPE", str, "refresh")
if LEGACY_JWT_SECRET:
    if LEGACY_JWT_SECRET == AUTH_JWT_SECRET:
        raise ImproperlyConfigured(
            "LEGACY_JWT_SECRET must differ from AUTH_JWT_SECRET: give the new backend a fresh secret."
        )
    try:
        _legacy_until = datetime.fromisoformat(LEGACY_JWT_ACCEPT_UNTIL)
    except ValueError:
        _legacy_until = None
    if _legacy_until is None or _legacy_until.tzinfo is None:
        raise ImproperlyConfigured(
            "LEGACY_JWT_ACCEPT_UNTIL must be an ISO-8601 moment with a UTC offset "
            "(e.g. 2027-01-31T00:00:00+00:00) when LEGACY_JWT_SECRET is set."
        )

SPECTACULAR_SETTINGS = {
    "TITLE": "HaloBestie API",
    "DESCRIPTION": (
        "REST API of the HaloBestie apps. Every error has the shape "
        '`{"error": {"code", "detail", "fields"?}}`. The WebSocket protocol is in docs/realtime.md.\n\n'
        "**Tokens.** Access tokens are short-lived; `POST /api/v1/auth/token/refresh` rotates the "
        "refresh token. The same refresh token again within AUTH_REFRESH_REUSE_LEEWAY_SECONDS gets "
        "the same new pair; later it is a reuse: 401 `token_reused` and every token of that login "
        "is revoked. Logout revokes the login's refresh and access tokens. A revoked access token "
        "is 401 `token_revoked` on every endpoint (and at socket connect). The deny list is in "
        "PostgreSQL: revocation holds while Valkey is down. Deactivating a mitra refuses its "
        "tokens at once (401 `mitra_deactivated`) and closes its sockets.\n\n"
        "**Limits.** Every endpoint without a limit of its own is limited per person (the user, "
        "else the client address): API_THROTTLE_READS_PER_MINUTE and "
        "API_THROTTLE_WRITES_PER_MINUTE; past them 429 `rate_limited` with `Retry-After`.\n\n"
        "**Input.** JSON nested deeper than 20 levels, or with a NUL or a lone surrogate in any "
        "string, is 400 `parse_error`; such a character in a path or query is 400 `bad_request`. "
        "Database trouble: 503 `database_unavailable` (unreachable), 503 `database_timeout` (a "
        "row busy past the lock timeout), 409 `database_conflict` (a deadlock: send again)."
    ),
    "VERSION": "1.0.0",
    "SERVE_URLCONF": "halobestie.urls_public",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "halobestie.openapi.add_error_envelope",
    ],
}

# External services -------------------------------------------------------------------------
XENDIT_ENABLED = env("XENDIT_ENABLED", bool, False)
XENDIT_API_URL = env("XENDIT_API_URL", str, "https://api.xendit.co").rstrip("/")
XENDIT_SECRET_KEY = env("XENDIT_SECRET_KEY", str, "")
XENDIT_WEBHOOK_TOKEN = env("XENDIT_WEBHOOK_TOKEN", str, "")
XENDIT_SUCCESS_REDIRECT_URL = env(
    "XENDIT_SUCCESS_REDIRECT_URL", str, f"{PUBLIC_BASE_URL}/payment/return/success"
)
XENDIT_FAILURE_REDIRECT_URL = env(
    "XENDIT_FAILURE_REDIRECT_URL", str, f"{PUBLIC_BASE_URL}/payment/return/failure"
)
XENDIT_TIMEOUT_SECONDS = env("XENDIT_TIMEOUT_SECONDS", float, 10.0)
# The local checkout (a stand-in for Xendit's invoice page: "Bayar" marks the session paid) exists
# only with XENDIT_ENABLED off, which DEBUG off refuses unless this escape hatch is set on purpose
# (a staging without Xendit test keys); it is logged as a warning at every start, and the page only
# opens with the signed key in the invoice_url its session's client received.
PAYMENTS_LOCAL_CHECKOUT_UNSAFE = env("PAYMENTS_LOCAL_CHECKOUT_UNSAFE", bool, False)
if not (DEBUG or TESTING):
    if PAYMENTS_LOCAL_CHECKOUT_UNSAFE and XENDIT_ENABLED:
        raise ImproperlyConfigured(
            "PAYMENTS_LOCAL_CHECKOUT_UNSAFE and XENDIT_ENABLED are both on: choose one."
        )
    if not PAYMENTS_LOCAL_CHECKOUT_UNSAFE:
        if not XENDIT_ENABLED:
            raise ImproperlyConfigured(
                "Environment variable XENDIT_ENABLED must be true when DEBUG is off (payments go "
                "through Xendit; a staging without Xendit sets PAYMENTS_LOCAL_CHECKOUT_UNSAFE=true)."
            )
        for _name, _value in (
            ("XENDIT_SECRET_KEY", XENDIT_SECRET_KEY),
            ("XENDIT_WEBHOOK_TOKEN", XENDIT_WEBHOOK_TOKEN),
        ):
            if not _value:
                raise ImproperlyConfigured(
                    f"Environment variable {_name} must be set when DEBUG is off (Xendit payments)."
                )
elif XENDIT_ENABLED and not TESTING and not (XENDIT_SECRET_KEY and XENDIT_WEBHOOK_TOKEN):
    raise ImproperlyConfigured(
        "XENDIT_ENABLED is on: XENDIT_SECRET_KEY and XENDIT_WEBHOOK_TOKEN must be set."
    )
# There is no default webhook token: with XENDIT_WEBHOOK_TOKEN empty every callback is refused
# (the local checkout and the reconciler feed the handler in process, without a token).
APP_DEEP_LINK_SCHEME = env("APP_DEEP_LINK_SCHEME", str, "mybestie")

FAZPASS_ENABLED = env("FAZPASS_ENABLED", bool, False)
FAZPASS_BASE_URL = env("FAZPASS_BASE_URL", str, "https://api.fazpass.com").rstrip("/")
FAZPASS_MERCHANT_KEY = env("FAZPASS_MERCHANT_KEY", str, "")
FAZPASS_GATEWAY_KEY = env("FAZPASS_GATEWAY_KEY", str, "")
FAZPASS_TIMEOUT_SECONDS = env("FAZPASS_TIMEOUT_SECONDS", float, 10.0)
if FAZPASS_ENABLED and not (FAZPASS_MERCHANT_KEY and FAZPASS_GATEWAY_KEY):
    raise ImproperlyConfigured(
        "FAZPASS_ENABLED is on: FAZPASS_MERCHANT_KEY and FAZPASS_GATEWAY_KEY must be set."
    )
# The OTP test bypass (FAZPASS_ENABLED off; app-store review accounts): the phones in
# OTP_TEST_PHONES accept OTP_TEST_CODE. DEBUG off: no default code, so a bypass needs both set
# on purpose (logged as a warning at every start); DEBUG on: any phone, code 123456 by default.
OTP_TEST_PHONES = env("OTP_TEST_PHONES", list, [])
OTP_TEST_CODE = env("OTP_TEST_CODE", str, "") or ("123456" if DEBUG or TESTING else "")
if OTP_TEST_CODE and (len(OTP_TEST_CODE) < 6 or not OTP_TEST_CODE.isdigit()) and not (DEBUG or TESTING):
    raise ImproperlyConfigured("Environment variable OTP_TEST_CODE must be at least 6 digits.")
OTP_TTL_SECONDS = env("OTP_TTL_SECONDS", int, 300)
OTP_RESEND_COOLDOWN_SECONDS = env("OTP_RESEND_COOLDOWN_SECONDS", int, 60)
OTP_MAX_ATTEMPTS = env("OTP_MAX_ATTEMPTS", int, 5)
OTP_MAX_PER_PHONE_PER_HOUR = env("OTP_MAX_PER_PHONE_PER_HOUR", int, 5)
OTP_MAX_PER_IP_PER_HOUR = env("OTP_MAX_PER_IP_PER_HOUR", int, 20)
# Vouchers: the lookups (preview, or a session/extension with a code) a client may make within
# the window, and how many of them may name a code that does not exist (no enumerating codes).
VOUCHER_LOOKUP_WINDOW_SECONDS = env("VOUCHER_LOOKUP_WINDOW_SECONDS", int, 3600)
VOUCHER_MAX_LOOKUPS_PER_USER = env("VOUCHER_MAX_LOOKUPS_PER_USER", int, 30)
VOUCHER_MAX_FAILED_LOOKUPS_PER_USER = env("VOUCHER_MAX_FAILED_LOOKUPS_PER_USER", int, 10)
# Key of the HMAC kept of an erased client's phone (first-session promos, docs/privacy.md).
# Empty: SECRET_KEY (then rotating SECRET_KEY forgets those marks).
PHONE_HASH_SECRET = env("PHONE_HASH_SECRET", str, "") or SECRET_KEY

# Mitra password login throttle: wrong passwords counted in Postgres per phone and per IP.
MITRA_LOGIN_WINDOW_SECONDS = env("MITRA_LOGIN_WINDOW_SECONDS", int, 900)
MITRA_LOGIN_MAX_FAILURES_PER_PHONE = env("MITRA_LOGIN_MAX_FAILURES_PER_PHONE", int, 5)
MITRA_LOGIN_MAX_FAILURES_PER_IP = env("MITRA_LOGIN_MAX_FAILURES_PER_IP", int, 20)

FIREBASE_SERVICE_ACCOUNT_PATH = env("FIREBASE_SERVICE_ACCOUNT_PATH", str, "")
FIREBASE_PROJECT_ID = env("FIREBASE_PROJECT_ID", str, "")
# The runbook's trap: without a service account pushes go nowhere, silently. With DEBUG off that
# must be a decision (PUSH_ENABLED=false), never a forgotten mount.
PUSH_ENABLED = env("PUSH_ENABLED", bool, True)
if PUSH_ENABLED and not FIREBASE_SERVICE_ACCOUNT_PATH and not (DEBUG or TESTING):
    raise ImproperlyConfigured(
        "FIREBASE_SERVICE_ACCOUNT_PATH is empty and DEBUG is off: pushes would silently go nowhere. "
        "Mount the Firebase service account and set its path, or set PUSH_ENABLED=false to run "
        "without pushes on purpose."
    )

ADMIN_EMAIL = env("ADMIN_EMAIL", str, "")
ADMIN_PASSWORD = env("ADMIN_PASSWORD", str, "")

SENTRY_DSN = env("SENTRY_DSN", str, "")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", str, "production")
SENTRY_TRACES_SAMPLE_RATE = env("SENTRY_TRACES_SAMPLE_RATE", float, 0.0)

# Serving (`python -m halobestie.serve public|internal`, see DEPLOY.md) -----------------------
PUBLIC_HOST = env("PUBLIC_HOST", str, "0.0.0.0")
PUBLIC_PORT = env("PUBLIC_PORT", int, 3000)
INTERNAL_HOST = env("INTERNAL_HOST", str, "127.0.0.1")
INTERNAL_PORT = env("INTERNAL_PORT", int, 3001)
# After SIGTERM: seconds of serving with /readyz at 503 (the load balancer stops routing), then
# at most this many seconds for in-flight requests before they are cancelled.
DRAIN_SECONDS = env("DRAIN_SECONDS", float, 5.0)
GRACEFUL_SHUTDOWN_SECONDS = env("GRACEFUL_SHUTDOWN_SECONDS", int, 20)
# How long an idle HTTP keep-alive connection stays open. Longer than any proxy's idle timeout in
# front of us (nginx 60 s, AWS ALB 60 s): when the server closes first, a request the proxy or app
# sends on that connection at the same moment is reset (a 502, or a failed call in the app).
HTTP_KEEP_ALIVE_SECONDS = env("HTTP_KEEP_ALIVE_SECONDS", int, 75)
# Proxies whose X-Forwarded-For / -Proto are trusted (comma-separated addresses or CIDRs; never
# "*", which lets any client choose its IP for the per-IP limits: DEPLOY.md § 10).
FORWARDED_ALLOW_IPS = env("FORWARDED_ALLOW_IPS", str, "127.0.0.1")
# WebSocket permessage-deflate (RFC 7692) on the public listener. Off: its zlib contexts cost
# ≈ 37 KiB per open socket, and our frames are a few hundred bytes (docs/PERFORMANCE.md, issue 22).
WS_PER_MESSAGE_DEFLATE = env("WS_PER_MESSAGE_DEFLATE", bool, False)
# Prometheus: each process's own registry on this port (0: off; the internal listener always has
# /metrics), bound to METRICS_HOST. Never publish it.
METRICS_PORT = env("METRICS_PORT", int, 0)
METRICS_HOST = env("METRICS_HOST", str, "127.0.0.1")
# The scheduler's /healthz (on METRICS_PORT) fails when its last completed tick is older than this.
SCHEDULER_STALE_SECONDS = env("SCHEDULER_STALE_SECONDS", float, 60.0)

# Production hardening, all on when DEBUG is off (TLS terminates at the reverse proxy).
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env("SECURE_COOKIES", bool, True)
    CSRF_COOKIE_SECURE = env("SECURE_COOKIES", bool, True)
    LANGUAGE_COOKIE_SECURE = env("SECURE_COOKIES", bool, True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # HSTS: Django sends it only on requests that arrived over HTTPS (the proxy's
    # X-Forwarded-Proto), so the plain-HTTP probes and the internal listener never get it.
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS", int, 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env("SECURE_HSTS_INCLUDE_SUBDOMAINS", bool, True)

SILENCED_SYSTEM_CHECKS = [
    # SECURE_SSL_REDIRECT stays off: the TLS proxy redirects HTTP to HTTPS (DEPLOY.md), and
    # behind it the load balancer's probes (/healthz, /readyz) and the internal listener speak
    # plain HTTP on the private network, which a redirect would break.
    "security.W008",
    # HSTS preload is a submission to the browsers' lists that cannot be taken back quickly: a
    # decision for whoever owns the domain, not a default of the code.
    "security.W021",
    # These three look for Django's own dotted paths in MIDDLEWARE; ours are subclasses that run
    # the same hooks without thread hops (halobestie/server/inline_builtins.py), whose deploy
    # check asks the same question of the classes, as an error.
    "security.W001",
    "security.W002",
    "security.W003",
]

LOG_LEVEL = env("LOG_LEVEL", str, "INFO")
_PROTOCOL_LOG_LEVEL = LOG_LEVEL if LOG_LEVEL.upper() in {"WARNING", "ERROR", "CRITICAL"} else "INFO"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "halobestie.server.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's own console handler, so every line is JSON and none is doubled.
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # uvicorn's own lines (start-up, shutdown, errors) as JSON too; its access log stays off
        # (halobestie.request logs each request without the query string).
        # Never below INFO: at DEBUG uvicorn and websockets print handshake headers and frames,
        # chat message bodies included.
        "uvicorn": {"handlers": ["stdout"], "level": _PROTOCOL_LOG_LEVEL, "propagate": False},
        "uvicorn.error": {"handlers": ["stdout"], "level": _PROTOCOL_LOG_LEVEL, "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "websockets": {"level": _PROTOCOL_LOG_LEVEL},
    },
}

if SENTRY_DSN:
    # Only when Sentry is configured (sentry-sdk is loaded for nothing otherwise).
    from halobestie.integrations.sentry import init_sentry

    init_sentry(SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
