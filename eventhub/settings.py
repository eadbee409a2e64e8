"""Eventhub settings, read from the environment.

Every variable is parsed strictly: a value that cannot be understood stops start-up with a message
naming the variable, rather than silently falling back to a default.
"""

import ipaddress
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EVENTHUB_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of {sorted(_TRUE | _FALSE)}")


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks (`10.0.0.0/8`, `2001:db8::1`)."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network") from None
    return networks


def env_header(name: str) -> tuple[str, str] | None:
    """A request header and the value that marks a request secure, e.g. `HTTP_X_FORWARDED_PROTO,https`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, _, value = (part.strip() for part in raw.partition(","))
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", header) or not value or "," in value:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a header and a value; write it as Django names it, "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    return header, value


def _development_secret_key() -> str:
    """A random key kept in var/, so sessions survive restarts of a development server."""
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DEBUG is off")
    SECRET_KEY = _development_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS, each off by default (Django's own defaults) so that `make run` works over plain http on localhost;
# `check --deploy` names each one still off, and README "Production serving" gives the values.
# SECURE_PROXY_SSL_HEADER: the header a proxy that ends TLS sets on every request, replacing the
# client's (who could otherwise claim https). Leave it unset without such a proxy.
SECURE_PROXY_SSL_HEADER = env_header("SECURE_PROXY_SSL_HEADER")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

INSTALLED_APPS = [
    "eventhub.apps.EventhubAdminConfig",  # django.contrib.admin, with the overview as its landing page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "eventhub.apps.EventhubConfig",
    "workflows.apps.WorkflowsConfig",
    "queues.apps.QueuesConfig",
    "handlers.apps.HandlersConfig",
]

MIDDLEWARE = [
    "eventhub.lib.health.Probes",
    "eventhub.lib.metrics.RequestMetrics",
    "eventhub.lib.api.middleware.LimitRequestBodies",
    "django.middleware.security.SecurityMiddleware",
    # Serves STATIC_ROOT (what collectstatic gathered) in every server; runserver serves its own first.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "eventhub.lib.api.middleware.RefuseUnstorableText",
    "eventhub.lib.api.middleware.ApiNotFoundAsJson",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a login its backend refused into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

# Prometheus: `/metrics` and the listener's metrics port need this bearer token (or, on the web, a staff
# session); `listen_queues --metrics-port` (or METRICS_PORT) serves the listener's.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0, maximum=65535) or None

# Request bodies over this get 413 on every route (Django's own limit for what it reads follows it).
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# Conductor's clients POST to paths without a trailing slash and follow a 301 as a GET, believing
# the write succeeded: routes match both forms themselves and nothing is ever redirected.
APPEND_SLASH = False

ROOT_URLCONF = "eventhub.urls"
WSGI_APPLICATION = "eventhub.wsgi.application"

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

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'eventhub.sqlite3'}"
try:
    # A kept connection is checked before a request reuses it: after a database restart the first request
    # of each thread gets a new one instead of a 500.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Eventhub understands: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Listeners, the django-q2 cluster and the web server share one file: wait for locks instead of
    # failing at once, and take the write lock at BEGIN so two writers never deadlock on upgrade.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# axes's backend first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# collectstatic also writes a gzip copy of each file, which WhiteNoise sends to clients that accept it.
# (Not the manifest variant: without a prior collectstatic it fails every page that names a static file.)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "eventhub.lib.api.auth.ConductorTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["eventhub.lib.api.permissions.ModelPermission"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "eventhub.lib.api.negotiation.LenientContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["eventhub.lib.api.parsers.StorableJSONParser", "eventhub.lib.api.parsers.AnyJSONParser"],
    "EXCEPTION_HANDLER": "eventhub.lib.api.errors.conductor_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Eventhub API",
    "DESCRIPTION": (
        "Conductor-compatible event handler, workflow and task API, plus Eventhub's own routes "
        "under /api/eventhub/."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for a message's outcomes wherever a field offers them (a filter, a backtest's list of them).
    "ENUM_NAME_OVERRIDES": {"OutcomeEnum": "queues.models.ReceivedMessage.Outcome"},
    "PREPROCESSING_HOOKS": ["eventhub.lib.api.schema.canonical_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "eventhub.lib.api.schema.json_request_bodies",
    ],
}

# API keys: a key id and secret are exchanged at POST /api/token for a signed token that expires.
API_TOKEN_TTL_SECONDS = env_int("API_TOKEN_TTL_SECONDS", 3600, minimum=60)
# The model of those keys (eventhub.lib.api.auth reads it through this name, as AUTH_USER_MODEL).
EVENTHUB_API_KEY_MODEL = "handlers.ApiKey"

# Failed sign-ins (admin login, key exchange), counted by django-axes in the database: after
# LOGIN_FAILURE_LIMIT failures less than LOGIN_COOLOFF_SECONDS apart, a client address gets 429 with
# Retry-After until the cool-off has passed since its last failure. eventhub.lib.login_throttle says why
# each of these is what it is.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_COOLOFF_SECONDS", 60, minimum=1))
# Per address, and per address and username (or key id): never per username alone, so that no client
# can lock an account's owner out.
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["ip_address", "username"]]
AXES_RESET_ON_SUCCESS = False  # a success forgives only its own pair (login_throttle.forgive)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # refused attempts are not counted: Retry-After holds
AXES_DISABLE_ACCESS_LOG = True  # (successful logins are not kept: nothing would ever delete them)
AXES_CLIENT_IP_CALLABLE = "eventhub.lib.login_throttle.client_address"
AXES_LOCKOUT_CALLABLE = "eventhub.lib.login_throttle.lockout_response"
# The proxies whose X-Forwarded-For is believed (addresses or networks); with none, the peer's address
# is the client's, whatever the request says.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")

Q_CLUSTER = {
    "name": "eventhub",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "catch_up": False,
    "orm": "default",
}
if os.environ.get("Q_REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = os.environ["Q_REDIS_URL"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # axes logs each step at INFO (and its configuration on every start); its warnings, one per failure
    # and per lock-out, are what an operator needs.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- workflows ---
# Which engine event actions drive: a name of workflows.engine.ENGINES — the built-in runtime
# (builtin), or a remote Conductor server (conductor; CONDUCTOR_SERVER_URL ends in /api, e.g.
# http://conductor:8080/api) — or the dotted path of an engine class. The workflows app checks it, and
# the engine its own settings, at start-up.
_engine = os.environ.get("WORKFLOW_ENGINE", "builtin").strip()
WORKFLOW_ENGINE = _engine if "." in _engine else _engine.lower()  # names are lower case; paths are not
CONDUCTOR_SERVER_URL = os.environ.get("CONDUCTOR_SERVER_URL", "")
CONDUCTOR_AUTH_KEY = os.environ.get("CONDUCTOR_AUTH_KEY") or None
CONDUCTOR_AUTH_SECRET = os.environ.get("CONDUCTOR_AUTH_SECRET") or None
CONDUCTOR_TIMEOUT_SECONDS = env_int("CONDUCTOR_TIMEOUT_SECONDS", 10, minimum=1)
# Tries after the first, backoff doubling from CONDUCTOR_RETRY_BACKOFF_MS. Reads are retried after any
# failure; a start or task update only when it cannot have reached Conductor (no connection, 503): a
# time-out or 500 may come after it acted, so it is raised and its message redelivered instead.
CONDUCTOR_RETRIES = env_int("CONDUCTOR_RETRIES", 2)
CONDUCTOR_RETRY_BACKOFF_SECONDS = float(env_int("CONDUCTOR_RETRY_BACKOFF_MS", 500)) / 1000
# How often the django-q2 sweep completes WAIT tasks whose duration is over.
WORKFLOW_WAIT_SWEEP_MINUTES = env_int("WORKFLOW_WAIT_SWEEP_MINUTES", 1, minimum=1)

# --- queues ---
# Broker endpoints use each ecosystem's own variable names. SQS: the provider reads AWS_REGION, then boto3
# AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_SQS and its credential chain (queues.providers.sqs); nothing is
# stored here.
AMQP_URL = os.environ.get("AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"
# Defaults of a queue config created for a handler's event (queues.configs.ensure_config).
QUEUES_DEFAULTS = {
    # Per-batch work (claim, records, acks, commit) is shared by the batch; SQS configs get at most 10.
    "batch_size": env_int("QUEUES_BATCH_SIZE", 100, minimum=1),
    "wait_seconds": env_int("QUEUES_WAIT_SECONDS", 20),
    "visibility_timeout": env_int("QUEUES_VISIBILITY_TIMEOUT", 60),
    "max_deliveries": env_int("QUEUES_MAX_DELIVERIES", 5, minimum=1),
    # Batches one listen_queues process handles at once per queue (a thread each).
    "concurrency": env_int("QUEUES_CONCURRENCY", 2, minimum=1, maximum=16),  # queues.models.MAX_CONCURRENCY
    "poll_interval_minutes": env_int("QUEUES_POLL_INTERVAL_MINUTES", 1, minimum=1),
}
# A body larger than this is quarantined unread.
QUEUES_MAX_MESSAGE_BYTES = env_int("QUEUES_MAX_MESSAGE_BYTES", 256 * 1024, minimum=1)
# django-q2: every enabled queue config gets a schedule draining it for at most this many seconds.
QUEUES_SCHEDULES = env_bool("QUEUES_SCHEDULES", True)
QUEUES_DRAIN_SECONDS = env_int("QUEUES_DRAIN_SECONDS", 50, minimum=1)
# pika logs every connection step at INFO.
LOGGING["loggers"]["pika"] = {"level": "WARNING"}

# --- handlers ---
# JavaScript conditions: each evaluation's time limit and the V8 isolate's memory limit.
CONDITION_TIME_LIMIT_SECONDS = env_int("CONDITION_TIME_LIMIT_MS", 1000, minimum=10) / 1000
CONDITION_MEMORY_LIMIT_BYTES = env_int("CONDITION_MEMORY_LIMIT_MB", 64, minimum=16) * 1024 * 1024
# JavaScript isolates per process (each up to the memory limit), and how long a dry-run waits for one
# before answering 503: concurrent requests cannot multiply the memory limit.
CONDITION_ISOLATES = env_int("CONDITION_ISOLATES", 4, minimum=1)
CONDITION_ISOLATE_WAIT_SECONDS = env_int("CONDITION_ISOLATE_WAIT_MS", 2000, minimum=0) / 1000

# What a handler (or a workflow task) may hold, checked when it is saved, so that every saved one can be
# evaluated: a condition's length, and of its `${...}` templates the nesting, a string's length and the count.
CONDITION_MAX_LENGTH = env_int("CONDITION_MAX_LENGTH", 16 * 1024, minimum=1)
TEMPLATE_MAX_NESTING = env_int("TEMPLATE_MAX_NESTING", 8, minimum=1, maximum=100)
TEMPLATE_MAX_LENGTH = env_int("TEMPLATE_MAX_LENGTH", 16 * 1024, minimum=1)
TEMPLATE_MAX_PLACEHOLDERS = env_int("TEMPLATE_MAX_PLACEHOLDERS", 500, minimum=1)
# Received messages and finished executions older than this are deleted by a django-q2 schedule
# (handlers.tasks.purge_old_records), which runs every RECORDS_PURGE_INTERVAL_MINUTES.
RECORDS_RETENTION_DAYS = env_int("RECORDS_RETENTION_DAYS", 30, minimum=1)
RECORDS_PURGE_INTERVAL_MINUTES = env_int("RECORDS_PURGE_INTERVAL_MINUTES", 60, minimum=1)
# A listener consumer's heartbeat silent this long is deleted (its process stopped or died).
LISTENER_HEARTBEAT_KEEP_MINUTES = env_int("LISTENER_HEARTBEAT_KEEP_MINUTES", 60, minimum=1)
# Backtests (handlers.backtests): up to BACKTEST_INLINE_MAX messages are answered in the request, more run
# as a django-q2 task, which stops (FAILED, its counts so far kept) after BACKTEST_TASK_SECONDS, inside the
# cluster's timeout. Without `from` or `limit` a backtest covers BACKTEST_DEFAULT_DAYS before `to`. Each
# keeps BACKTEST_SAMPLES messages of each kind; results older than BACKTEST_KEEP_HOURS are deleted by the
# records purge.
BACKTEST_INLINE_MAX = env_int("BACKTEST_INLINE_MAX", 1000, minimum=1)
BACKTEST_TASK_SECONDS = env_int("BACKTEST_TASK_SECONDS", 240, minimum=1, maximum=Q_CLUSTER["timeout"] - 30)
BACKTEST_DEFAULT_DAYS = env_int("BACKTEST_DEFAULT_DAYS", 7, minimum=1)
BACKTEST_SAMPLES = env_int("BACKTEST_SAMPLES", 10, minimum=1, maximum=100)
BACKTEST_KEEP_HOURS = env_int("BACKTEST_KEEP_HOURS", 72, minimum=1)
# Observed shapes (handlers.shapes): the field paths seen on each event, for linting handlers. Each consumer
# walks at most one message per event every SHAPES_SAMPLE_MS and writes what was new at most every
# SHAPES_WRITE_SECONDS (what it saw again, every SHAPES_REFRESH_SECONDS). An event keeps SHAPES_MAX_PATHS paths,
# SHAPES_MAX_DEPTH steps deep; an object of more than SHAPES_MAX_KEYS keys is taken as free-form (anything below
# it counts as seen); SHAPES_ARRAY_ITEMS items of each array are walked. Paths not seen for SHAPES_STALE_DAYS
# are dropped, and an event none was seen on for that long loses its shape (records purge).
SHAPES_SAMPLE_SECONDS = env_int("SHAPES_SAMPLE_MS", 1000, minimum=0) / 1000
SHAPES_WRITE_SECONDS = env_int("SHAPES_WRITE_SECONDS", 10, minimum=0)
SHAPES_REFRESH_SECONDS = env_int("SHAPES_REFRESH_SECONDS", 3600, minimum=0)
SHAPES_MAX_PATHS = env_int("SHAPES_MAX_PATHS", 500, minimum=1, maximum=10_000)
SHAPES_MAX_DEPTH = env_int("SHAPES_MAX_DEPTH", 12, minimum=1, maximum=64)
SHAPES_MAX_KEYS = env_int("SHAPES_MAX_KEYS", 100, minimum=1)
SHAPES_ARRAY_ITEMS = env_int("SHAPES_ARRAY_ITEMS", 3, minimum=1)
SHAPES_STALE_DAYS = env_int("SHAPES_STALE_DAYS", 7, minimum=1)
# The overview's day and week charts read hourly rollups (handlers.rollups) of hours that ended
# OVERVIEW_ROLLUP_SETTLE_MINUTES ago (longer than a batch's stamping before its transaction, and any clock
# difference between hosts; on PostgreSQL a still-open transaction also holds its hours back); a django-q2
# schedule rolls them up every OVERVIEW_ROLLUP_MINUTES, and the page rolls up any it finds missing.
OVERVIEW_ROLLUP_SETTLE_MINUTES = env_int("OVERVIEW_ROLLUP_SETTLE_MINUTES", 10, minimum=1, maximum=24 * 60)
OVERVIEW_ROLLUP_MINUTES = env_int("OVERVIEW_ROLLUP_MINUTES", 10, minimum=1)

# --- outbox ---
# Outgoing messages (EVENT tasks, the publish API) go through queues.OutboxMessage; a relay publishes them.
OUTBOX_BATCH_SIZE = env_int("OUTBOX_BATCH_SIZE", 100, minimum=1)  # rows one relay step claims
# A claimed row not marked SENT within this time (its relay died) is published again, same message id.
OUTBOX_CLAIM_SECONDS = env_int("OUTBOX_CLAIM_SECONDS", 60, minimum=1)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 10, minimum=1)  # then FAILED, retryable in the admin
OUTBOX_BACKOFF_SECONDS = env_int("OUTBOX_BACKOFF_SECONDS", 2, minimum=0)  # doubled per failed attempt
OUTBOX_BACKOFF_MAX_SECONDS = env_int("OUTBOX_BACKOFF_MAX_SECONDS", 600, minimum=0)
OUTBOX_POLL_SECONDS = float(env_int("OUTBOX_POLL_MS", 500, minimum=1)) / 1000  # listen_queues' relay interval
# django-q2 fallback relay for deployments without listen_queues: every N minutes, for at most S seconds.
OUTBOX_SCHEDULE = env_bool("OUTBOX_SCHEDULE", True)
OUTBOX_RELAY_MINUTES = env_int("OUTBOX_RELAY_MINUTES", 1, minimum=1)
OUTBOX_RELAY_SECONDS = env_int("OUTBOX_RELAY_SECONDS", 50, minimum=1)

# --- alerts ---
# Rules are evaluated by a django-q2 schedule every ALERTS_EVALUATE_MINUTES (handlers.alerts.evaluate_alerts).
ALERTS_SCHEDULE = env_bool("ALERTS_SCHEDULE", True)
ALERTS_EVALUATE_MINUTES = env_int("ALERTS_EVALUATE_MINUTES", 1, minimum=1)
# Who is told when an alert opens or resolves: e-mail addresses (comma-separated; sent with Django's
# mail settings below) and a webhook URL that gets JSON with a Slack-compatible `text` field.
ALERTS_EMAILS = env_list("ALERTS_EMAILS", [])
ALERTS_WEBHOOK_URL = os.environ.get("ALERTS_WEBHOOK_URL", "")
ALERTS_WEBHOOK_TIMEOUT_SECONDS = env_int("ALERTS_WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
# A failed notification is tried again after ALERTS_RETRY_BACKOFF_SECONDS, doubled per try, up to this many tries.
ALERTS_MAX_ATTEMPTS = env_int("ALERTS_MAX_ATTEMPTS", 5, minimum=1)
ALERTS_RETRY_BACKOFF_SECONDS = env_int("ALERTS_RETRY_BACKOFF_SECONDS", 30, minimum=0)
# Django's own mail settings, read from variables of the same names.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "eventhub@localhost")
