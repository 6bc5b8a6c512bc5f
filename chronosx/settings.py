"""ChronosX settings: one module, switched by environment variables (CONTRACT.md §3).

With no variable set, ChronosX runs on its embedded default: SQLite under var/,
tasks run in-process, the sandbox venue, plain HTTP on 127.0.0.1/localhost.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from chronosx.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CHRONOSX_VAR_DIR", BASE_DIR / "var"))


def env(name, default=None):
    """Read a setting; `NAME_FILE` (a path) wins over `NAME`, so secrets can live in files.
    Under systemd, a credential of the unit named `name` in lower case (LoadCredential=
    django_secret_key:/etc/…) is read when neither is set (deploy/systemd/)."""
    file_path = os.environ.get(f"{name}_FILE")
    if not file_path and name not in os.environ and os.environ.get("CREDENTIALS_DIRECTORY"):
        credential = Path(os.environ["CREDENTIALS_DIRECTORY"]) / name.lower()
        file_path = str(credential) if credential.is_file() else None
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path} cannot be read: {exc.strerror or exc}") from None
    return os.environ.get(name, default)


def env_bool(name, default=False):
    return env(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")


# TLS terminated in front of the app (nginx on the production stack, which sets it):
# secure cookies, HSTS and a redirect of plain HTTP to HTTPS.
CHRONOSX_TLS = env_bool("CHRONOSX_TLS")

# The built-in key is public: it signs sessions only for the embedded default on
# 127.0.0.1. Any other stack (a DATABASE_URL, a broker, TLS) must bring its own.
EMBEDDED_SECRET_KEY = "chronosx-embedded-default-not-for-production"
SECRET_KEY = env("DJANGO_SECRET_KEY") or EMBEDDED_SECRET_KEY
_NOT_EMBEDDED = [name for name in ("DATABASE_URL", "CELERY_BROKER_URL") if env(name)] + (["CHRONOSX_TLS"] if CHRONOSX_TLS else [])
if _NOT_EMBEDDED and SECRET_KEY == EMBEDDED_SECRET_KEY:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when {' and '.join(_NOT_EMBEDDED)} is set: "
        "the built-in key is public and only for the embedded default"
    )
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Behind nginx the app is bound to 127.0.0.1; nginx sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if CHRONOSX_TLS:
    SECURE_SSL_REDIRECT = True
    # Probes on the app's own loopback port (supervisor, Prometheus) speak plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^api/v1/health/$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(env("CHRONOSX_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CHRONOSX_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # Preloading puts the domain on the browsers' built-in lists, which takes months to undo:
    # the owner of the domain decides (CHRONOSX_HSTS_PRELOAD=1), so its check is silenced here.
    SECURE_HSTS_PRELOAD = env_bool("CHRONOSX_HSTS_PRELOAD")
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "pgtrigger",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "chronosx",
    "governance",
    "ledger",
    "exchange",
    "compliance",
]

MIDDLEWARE = [
    "chronosx.logs.request_id_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "governance.access.IdleSessionMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "governance.access.TwoFactorMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chronosx.urls"
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
                "governance.access.security_context",
            ]
        },
    }
]
ASGI_APPLICATION = "chronosx.asgi.application"
WSGI_APPLICATION = "chronosx.wsgi.application"

# --- Staff access (admin and dashboard; governance/access.py) ---------------------------
# Failed logins: django-axes locks out one username from one address after
# CHRONOSX_LOGIN_FAILURE_LIMIT failures, for CHRONOSX_LOGIN_LOCKOUT_MINUTES (it must be the
# first backend: it refuses a locked-out login before the password is checked).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(env("CHRONOSX_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(env("CHRONOSX_LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner would land on every management command's stderr
# Behind nginx every request comes from 127.0.0.1; nginx appends the address it saw.
AXES_CLIENT_IP_CALLABLE = "governance.access.client_ip"
# A session ends after this long without a request of its user's own (the dashboard's
# timed panel refreshes do not count); the cookie and the stored session expire with it.
CHRONOSX_SESSION_IDLE_SECONDS = int(env("CHRONOSX_SESSION_IDLE_SECONDS", "28800"))
SESSION_COOKIE_AGE = CHRONOSX_SESSION_IDLE_SECONDS
# Two-factor authentication (TOTP, django-otp): with it on, risk officers and superusers
# sign in with a code from their authenticator (`manage.py staff totp NAME` sets one up).
# On by default on a production stack (a DATABASE_URL); the embedded default warns that it is off.
CHRONOSX_EMBEDDED_DEFAULT = not env("DATABASE_URL")
CHRONOSX_REQUIRE_2FA = env_bool("CHRONOSX_REQUIRE_2FA", default=not CHRONOSX_EMBEDDED_DEFAULT)
OTP_TOTP_ISSUER = "ChronosX"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Connections persist (a new PostgreSQL connection per request or task costs more than the
# work), and are checked before reuse, so one the server dropped is replaced, not failed on.
# Celery workers keep theirs only because chronosx/celery.py tells Celery's Django fixup to.
CONN_MAX_AGE = int(env("CHRONOSX_CONN_MAX_AGE", "300"))
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'chronosx.sqlite3'}",
        conn_max_age=CONN_MAX_AGE,
        conn_health_checks=True,
    )
}
# A connection pool (psycopg's) instead: the web tier runs each request's synchronous code on a
# thread of its own, so a connection kept per thread is never reused and one made per request
# costs more than the request (asgi.py turns the pool on there). The pool holds at most this
# many connections per process, and a request waits up to CHRONOSX_DB_POOL_TIMEOUT_SECONDS for
# one, then answers 503 with Retry-After like any other database outage.
CHRONOSX_DB_POOL_SIZE = int(env("CHRONOSX_DB_POOL_SIZE", "0"))
if CHRONOSX_DB_POOL_SIZE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # With CONN_HEALTH_CHECKS the pool checks each connection as it lends it (a dropped one is replaced).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": CHRONOSX_DB_POOL_SIZE,
        "timeout": float(env("CHRONOSX_DB_POOL_TIMEOUT_SECONDS", "2")),
        "max_idle": 300,
    }
# In production DATABASE_URL is the runtime role, which owns no table and so cannot disable
# or drop the append-only triggers; migrations (tables and triggers) need the owner role:
# DATABASE_OWNER_URL and `python manage.py migrate --database owner` (docs/database-roles.md).
# Unset: one database, as before. No router is needed: migrate runs on the alias it is given.
if env("DATABASE_OWNER_URL"):
    DATABASES["owner"] = dj_database_url.parse(env("DATABASE_OWNER_URL"), conn_max_age=0)
IS_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")
for _database in DATABASES.values():
    if _database["ENGINE"].endswith("sqlite3"):
        # IMMEDIATE takes the write lock at BEGIN, so the in-process background thread
        # and request threads queue for it instead of failing with "database is locked".
        # WAL lets readers (the API, the dashboard) run beside the one writer, and NORMAL
        # syncs at checkpoints, not on every commit (a power cut can lose the last commits,
        # never corrupt the file: the embedded default is for one machine, not for funds).
        _database["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Behind nginx, nginx serves STATIC_ROOT (after collectstatic); embedded, the app does.
CHRONOSX_SERVE_STATIC = env_bool("CHRONOSX_SERVE_STATIC", default=not env("DATABASE_URL"))

# Request bodies above 64 KiB are refused with 413 (CONTRACT.md §1).
API_MAX_BODY_BYTES = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # admin forms; the API applies its own limit

REDIS_URL = env("REDIS_URL") or env("CELERY_BROKER_URL")
if REDIS_URL and REDIS_URL.startswith("redis"):
    # Short timeouts: a Redis that is away must cost a request (the throttle) half a second
    # at most, after which the throttle lets it through.
    CACHES = {
        "default": {
            "BACKEND": "chronosx.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["governance.auth.AgentTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["chronosx.api.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["governance.auth.AgentRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"agent": env("CHRONOSX_AGENT_RATE", "1200/min")},
    "EXCEPTION_HANDLER": "chronosx.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ChronosX agent API",
    "DESCRIPTION": "Governance-first pre-trade control layer: agents propose, governance decides.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "governance.schema.postprocess"],
    "ENUM_NAME_OVERRIDES": {"ErrorCodeEnum": "governance.schema.ERROR_CODES"},
}

# Celery: with no broker, tasks run in-process (embedded mode).
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
EMBEDDED_TASKS = not CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = EMBEDDED_TASKS
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "governance"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker outlives its broker restarting (tests/integration/test_broker_restart.py, test_chaos.py):
# it reconnects for as long as the broker is away (the default, 100 attempts, gives up after about
# 45 minutes and the worker exits), and the tasks running when the connection drops run to the end
# rather than being killed: their messages went with the restarted Redis or are delivered again,
# and every task is idempotent (the sweepers redo what is lost). Celery 6 would cancel them by
# default. The celery/kombu versions matter as much: see requirements.txt.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Fail fast when the broker is down: the row is committed and the sweeper re-enqueues.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

# Embedded default: heartbeats, sweeper and reconciler on a thread of the server process
# (chronosx/embedded.py). Off only for test runs, whose requests must not start it.
CHRONOSX_EMBEDDED_LOOP = env_bool("CHRONOSX_EMBEDDED_LOOP", default=True)
# How long a proposal may sit in one stage before the sweeper picks it up again.
CHRONOSX_SWEEP_AFTER_SECONDS = float(env("CHRONOSX_SWEEP_AFTER_SECONDS", "10"))
CHRONOSX_SWEEP_INTERVAL_SECONDS = float(env("CHRONOSX_SWEEP_INTERVAL_SECONDS", "5"))
# The pipeline is bounded: with this many proposals awaiting a decision, votes or routing, a new
# one is refused (429 `overloaded`, Retry-After) instead of waiting behind them until its signal
# is stale. Size it as fills per second times the delay a desk accepts. 0: unbounded.
CHRONOSX_MAX_PENDING_PROPOSALS = int(env("CHRONOSX_MAX_PENDING_PROPOSALS", "1000"))
# Fault injection for tests of worker crashes: the evaluation sleeps this long
# inside its transaction. Always 0 in production.
CHRONOSX_EVALUATION_DELAY_SECONDS = float(env("CHRONOSX_EVALUATION_DELAY_SECONDS", "0"))

CHRONOSX_VENUE = env("CHRONOSX_VENUE", "sandbox")
if EMBEDDED_TASKS and CHRONOSX_VENUE != "sandbox":
    # In the embedded default the web process, which answers agents, would hold the
    # exchange credentials and send live orders inside an agent's request.
    raise ImproperlyConfigured(
        f"CHRONOSX_VENUE={CHRONOSX_VENUE} needs CELERY_BROKER_URL and a separate router worker "
        "(celery -A chronosx worker -Q router): the embedded default only routes to the sandbox venue"
    )
# How long a quorum approval may wait (e.g. through a trading halt) before it is
# sent; older approvals expire unsent rather than trade at prices nobody re-checked.
CHRONOSX_APPROVAL_MAX_AGE_SECONDS = float(env("CHRONOSX_APPROVAL_MAX_AGE_SECONDS", "120"))
CHRONOSX_NODE_KEY_DIR = Path(env("CHRONOSX_NODE_KEY_DIR") or VAR_DIR / "keys")
# Where each node writes its signed checkpoint of the chain's head, and where verification reads
# them: unset, the node key folder. A deployment whose nodes keep their keys in folders of their
# own names one folder all of them write to and the verifiers (admin, reports worker) can read.
CHRONOSX_CHECKPOINT_DIR = env("CHRONOSX_CHECKPOINT_DIR") or None
# Compliance jobs (exports and chain verifications started in the admin): where export files
# are kept for download (the web process and the governance worker must both reach it), and
# how long a running job may go without reporting progress before the sweeper takes it back.
CHRONOSX_EXPORT_DIR = Path(env("CHRONOSX_EXPORT_DIR") or VAR_DIR / "exports")
CHRONOSX_JOB_STALE_SECONDS = float(env("CHRONOSX_JOB_STALE_SECONDS", "300"))
# Each node signs the audit chain's head (seq, hash) this often and keeps it in its key
# folder, outside the database: verify_audit reports deleted newest events against it.
CHRONOSX_CHECKPOINT_INTERVAL_SECONDS = float(env("CHRONOSX_CHECKPOINT_INTERVAL_SECONDS", "60"))
# The node this process acts as ("risk", "portfolio", "execution"); empty: not a node
# process. In embedded mode the one process runs all three, each with its own key file.
CHRONOSX_NODE = env("CHRONOSX_NODE", "")

WEEX_API_KEY = env("WEEX_API_KEY")
WEEX_API_SECRET = env("WEEX_API_SECRET")
WEEX_API_PASSPHRASE = env("WEEX_API_PASSPHRASE")
WEEX_DEMO = env_bool("WEEX_DEMO")
WEEX_BASE_URL = env("WEEX_BASE_URL")

# Execution layer (exchange/). Our BTCUSDT is ccxt's BTC/USDT (spot) or BTC/USDT:USDT
# (linear perpetual, "swap"). WEEX demo trading (WEEX_DEMO=1) has contract markets only.
CHRONOSX_WEEX_MARKET = env("CHRONOSX_WEEX_MARKET", "spot")
CHRONOSX_VENUE_TIMEOUT_MS = int(env("CHRONOSX_VENUE_TIMEOUT_MS", "5000"))
CHRONOSX_VENUE_RATE_LIMIT = env_bool("CHRONOSX_VENUE_RATE_LIMIT", default=True)  # ccxt enableRateLimit
CHRONOSX_SANDBOX_FEE_BPS = env("CHRONOSX_SANDBOX_FEE_BPS", "10")
# After a timeout or 5xx the router looks the order up this many times, waiting
# backoff * 2**n before each; 429s are retried as often with the same waits.
CHRONOSX_ROUTER_BACKOFF_SECONDS = float(env("CHRONOSX_ROUTER_BACKOFF_SECONDS", "0.5"))
CHRONOSX_ROUTER_LOOKUP_ATTEMPTS = int(env("CHRONOSX_ROUTER_LOOKUP_ATTEMPTS", "4"))
CHRONOSX_ROUTER_RATE_LIMIT_RETRIES = int(env("CHRONOSX_ROUTER_RATE_LIMIT_RETRIES", "3"))
# Sends of one client order id at most (resends only after the venue says it has no such order).
CHRONOSX_ROUTER_SEND_ATTEMPTS = int(env("CHRONOSX_ROUTER_SEND_ATTEMPTS", "3"))
# An order left in "sending" this long belongs to a router that died: the reconciler takes it over.
CHRONOSX_ORDER_STALE_SECONDS = float(env("CHRONOSX_ORDER_STALE_SECONDS", "30"))
# Automatic breakers: this many consecutive venue errors or rejects trip "venue_errors";
# one venue answer slower than this trips "venue_latency".
CHRONOSX_BREAKER_VENUE_ERRORS = int(env("CHRONOSX_BREAKER_VENUE_ERRORS", "5"))
CHRONOSX_BREAKER_VENUE_LATENCY_MS = int(env("CHRONOSX_BREAKER_VENUE_LATENCY_MS", "3000"))

# Alerts (breaker trips, a node down, reconciliation mismatches, trading-state changes,
# force-executions): by email to these recipients (comma-separated) and, when set, as a JSON
# POST to the webhook. Each is retried this many attempts in all, waiting the backoff, doubled
# each time (at most 5 minutes), between them.
CHRONOSX_ALERT_EMAILS = [a.strip() for a in (env("CHRONOSX_ALERT_EMAILS") or "").split(",") if a.strip()]
CHRONOSX_ALERT_WEBHOOK = env("CHRONOSX_ALERT_WEBHOOK") or ""
CHRONOSX_ALERT_TIMEOUT_SECONDS = float(env("CHRONOSX_ALERT_TIMEOUT_SECONDS", "5"))
CHRONOSX_ALERT_ATTEMPTS = int(env("CHRONOSX_ALERT_ATTEMPTS", "6"))
CHRONOSX_ALERT_BACKOFF_SECONDS = float(env("CHRONOSX_ALERT_BACKOFF_SECONDS", "5"))
DEFAULT_FROM_EMAIL = env("CHRONOSX_ALERT_FROM", "chronosx@localhost")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))

# JSON lines with the request and proposal ids on the production stack (CHRONOSX_LOG_FORMAT=json,
# which the stack sets); plain text otherwise. chronosx/logs.py.
CHRONOSX_LOG_JSON = env("CHRONOSX_LOG_FORMAT", "plain") == "json"
LOGGING = logging_config(json=CHRONOSX_LOG_JSON, level=env("CHRONOSX_LOG_LEVEL", "INFO"))
# Celery workers log through LOGGING too, rather than replacing it with their own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = not CHRONOSX_LOG_JSON

# Periodic jobs: Celery beat in production; the embedded loop runs the same
# functions in-process when there is no broker.
# The audit sequencer links committed events into the hash chain this often.
CHRONOSX_AUDIT_CHAIN_INTERVAL_SECONDS = float(env("CHRONOSX_AUDIT_CHAIN_INTERVAL_SECONDS", "1"))
# The sequencer process (manage.py audit_sequencer) looks for newly committed events this often:
# the stream delivers an event within about this long of its commit, plus its transaction's wait.
CHRONOSX_AUDIT_SEQUENCER_POLL_SECONDS = float(env("CHRONOSX_AUDIT_SEQUENCER_POLL_SECONDS", "0.02"))
CELERY_BEAT_SCHEDULE = {
    # A round nobody took within 5 s is dropped: the next one does the same work.
    "chain": {"task": "ledger.chain", "schedule": CHRONOSX_AUDIT_CHAIN_INTERVAL_SECONDS, "options": {"expires": 5}},
    "sweep": {"task": "governance.sweep", "schedule": CHRONOSX_SWEEP_INTERVAL_SECONDS},
    "reconcile": {"task": "exchange.reconcile", "schedule": CHRONOSX_SWEEP_INTERVAL_SECONDS},
    "compliance-jobs": {"task": "compliance.sweep", "schedule": CHRONOSX_SWEEP_INTERVAL_SECONDS},
}
CELERY_BEAT_SCHEDULE_EMBEDDED_FAST = ["ledger.services.audit_chain_extend"]
# The embedded default runs the sequencer's loop on a thread of its own too (production: the
# `manage.py audit_sequencer` process); the fast round above stays as its fallback.
CHRONOSX_EMBEDDED_SEQUENCER = "ledger.services.audit_sequencer_run"
CELERY_BEAT_SCHEDULE_EMBEDDED = [
    "governance.services.sweep.proposals_sweep",
    "exchange.services.settling.orders_reconcile_and_sweep",
    "compliance.tasks.compliance_jobs_sweep",
]
# Queues: "governance" (evaluation, sweeps), one per MPC node ("risk", "portfolio",
# "execution": each node's worker holds only its own key), "router" (orders).
CELERY_TASK_ROUTES = {
    "exchange.*": {"queue": "router"},
    "ledger.*": {"queue": "governance"},
}
