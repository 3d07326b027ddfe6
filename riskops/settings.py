"""RiskOps settings: one file, every deploy-dependent value from the environment.

A bad value stops start-up with ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

import hmac
import importlib.util
import os
import re
import zoneinfo
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RISKOPS_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # beat's schedule, the filesystem broker, notification files


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true/false, 1/0, yes/no or on/off")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_hours(name: str, default: str) -> tuple[int, int] | None:
    """A span of the day as "HH:MM-HH:MM" (it may cross midnight): its ends as minutes since midnight; "off": None."""
    raw = os.environ.get(name) or default
    if raw.strip().lower() == "off":
        return None
    match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*", raw)
    if match is None:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a span of the day like 21:00-08:00 (or off)")
    start, end = int(match[1]) * 60 + int(match[2]), int(match[3]) * 60 + int(match[4])
    if start == end:
        raise ImproperlyConfigured(f"{name}={raw!r} is empty: its start and end are the same")
    return start, end


def parse_database_url(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:port/name); "
            f"got scheme {parsed.scheme!r}"
        )
    name = unquote(parsed.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL has no database name (postgresql://.../NAME)")
    query = parse_qs(parsed.query)
    host = query.pop("host", [parsed.hostname or ""])[0]
    try:
        port = query.pop("port", [str(parsed.port or "")])[0]
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port: {url!r}") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": port,
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        # Statements run with server-side binding, and psycopg prepares each one the connection has run
        # `prepare_threshold` times (the appeal intake's, the token check: their parsing and planning was about half
        # of PostgreSQL's work per appeal). Behind a pooler in transaction mode, DATABASE_PREPARED=false.
        "OPTIONS": {
            "server_side_binding": True,
            "prepare_threshold": 5 if env_bool("DATABASE_PREPARED", True) else None,
            **{k: v[0] for k, v in query.items()},
        },
        "TEST": {"NAME": os.environ.get("DATABASE_TEST_NAME") or f"test_{name}"},
    }


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "dev-only-insecure-key-never-used-in-production"  # noqa: S105

# --- Audit chain (docs/AUDIT.md): the key that signs the chain's checkpoints. Unset, it is derived from SECRET_KEY
# (fine for development; `check --deploy` warns, riskops.W001): in production, a key of its own, kept away from the
# database's administrators, so that rewriting the chain needs more than the database.
AUDIT_CHECKPOINT_KEY_SET = bool(os.environ.get("AUDIT_CHECKPOINT_KEY"))
AUDIT_CHECKPOINT_KEY = os.environ.get("AUDIT_CHECKPOINT_KEY", "")
if AUDIT_CHECKPOINT_KEY_SET and len(AUDIT_CHECKPOINT_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_KEY must be at least 32 characters long")
if not AUDIT_CHECKPOINT_KEY:
    AUDIT_CHECKPOINT_KEY = hmac.new(SECRET_KEY.encode(), b"riskops-audit-checkpoint-key", "sha256").hexdigest()

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is empty; list host names separated by commas")
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    # django.contrib.admin with the site that lets in administrators only (riskops.admin_site).
    "riskops.apps.RiskOpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # WhiteNoise serves the static files, under runserver too (runserver's own handler would answer first).
    "whitenoise.runserver_nostatic",
    "riskops.staticfiles.StaticFilesConfig",  # django.contrib.staticfiles, without plotly's unused files
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI from the package's static files, not a CDN
    "csp",  # the Content-Security-Policy header (CONTENT_SECURITY_POLICY below)
    "django_otp",  # the second factor (riskops.core.second_factor)
    "django_otp.plugins.otp_totp",
    "axes",  # login failures counted, a username locked from an address (riskops.core.logins audits them)
    "riskops",
    "accounts",
    "appeals",
    "ingest",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads a body (the upload-name parser, CSRF's check of the form, the views).
    "riskops.core.http.BodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "appeals.middleware.UploadNameMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "riskops.core.sessions.IdleTimeoutMiddleware",
    "riskops.core.second_factor.SecondFactorMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "riskops.urls"
WSGI_APPLICATION = "riskops.wsgi.application"

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
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database: any PostgreSQL through DATABASE_URL, else the embedded server under var/pg.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    from riskops.embedded_db import ensure_running

    DATABASE_URL = ensure_running()
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: a locked-out username and address is refused before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "riskops.core.auth.RoleBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 12, minimum=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Lockout: LOGIN_FAILURE_LIMIT wrong passwords for one username from one address lock that pair for
# LOGIN_LOCKOUT_MINUTES (others, and the same user from elsewhere, can still log in; a success resets the count).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "riskops.core.logins.lockout_response"
AXES_CLIENT_IP_CALLABLE = "riskops.core.http.client_address"
AXES_DISABLE_ACCESS_LOG = True  # logins are audit events (riskops.core.logins)
AXES_VERBOSE = False
# How many reverse proxies in front of the console add to X-Forwarded-For (0: clients connect directly).
PROXY_COUNT = env_int("PROXY_COUNT", 0)
# Sessions: ended after SESSION_IDLE_MINUTES without a request, and SESSION_MAX_HOURS after the login at the latest.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = env_int("SESSION_MAX_HOURS", 12, minimum=1) * 3600
# The roles that must give a one-time code from an authenticator app after the password (comma-separated; empty:
# optional for everyone). `admin` covers Django superusers too.
SECOND_FACTOR_ROLES = [r.strip() for r in os.environ.get("SECOND_FACTOR_ROLES", "").split(",") if r.strip()]
_UNKNOWN_ROLES = set(SECOND_FACTOR_ROLES) - {"analyst", "senior_reviewer", "risk_manager", "auditor", "admin"}
if _UNKNOWN_ROLES:
    raise ImproperlyConfigured(
        f"SECOND_FACTOR_ROLES names unknown roles {sorted(_UNKNOWN_ROLES)}; use analyst, senior_reviewer, "
        "risk_manager, auditor, admin"
    )
OTP_TOTP_ISSUER = "RiskOps"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Language and time
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans").lower()
if LANGUAGE_CODE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(f"LANGUAGE_CODE={LANGUAGE_CODE!r} is not supported; use zh-hans or en")
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not a known time zone (e.g. Asia/Shanghai)") from None
USE_I18N = True
USE_TZ = True

# Sessions are read on every page: from the cache first, the database when the cache misses.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    if urlparse(CACHE_URL).scheme not in {"redis", "rediss"}:
        raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL; got {CACHE_URL!r}")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

STATIC_URL = "static/"
# plotly.js comes from the plotly package itself (never a CDN).
_PLOTLY_DIR = Path(importlib.util.find_spec("plotly").origin).parent / "package_data"  # type: ignore[arg-type,union-attr]
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", _PLOTLY_DIR)]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", str(BASE_DIR / "static_root")))
# WhiteNoise's middleware serves the static files in every process that serves pages (no web server to set up).
# STATIC_COLLECTED=true (the default when DEBUG is false; `make run` sets it): as `collectstatic` wrote them to
# STATIC_ROOT, with gzip and brotli copies and, when DEBUG is false, under hashed names cached for a year
# ("immutable"; plotly.min.js is 4.8 MB). false (the default with DEBUG on: development and the tests): straight from
# their folders, so pages and their files work without collectstatic and an edited file is served at once. Chosen
# from the environment rather than from whether a manifest exists: the tests must not link the hashed names of a
# manifest that `make run` left in the checkout, and the first collectstatic of a deploy must write one.
# tests/test_static.py runs collectstatic into a temporary STATIC_ROOT and checks the collected way.
STATIC_COLLECTED = env_bool("STATIC_COLLECTED", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "riskops.staticfiles.CollectedStaticFilesStorage"
        if STATIC_COLLECTED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_COLLECTED
WHITENOISE_AUTOREFRESH = not STATIC_COLLECTED
# Source maps are fetched only by an open developer console; compressing their 6 MB took a third of collectstatic.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]

# --- Celery: the broker is CELERY_BROKER_URL; when unset, kombu's filesystem transport under
# var/celery, which needs no server.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
if CELERY_BROKER_URL:
    scheme = urlparse(CELERY_BROKER_URL).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory"}:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL has an unsupported scheme {scheme!r}; use redis://, amqp:// or filesystem://"
        )
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
if not CELERY_BROKER_URL or urlparse(CELERY_BROKER_URL).scheme == "filesystem":
    # The filesystem transport keeps its folders under var/celery (kombu's default is the current directory).
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 15 * 60, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 14 * 60, minimum=1)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "notifications-send-pending": {
        "task": "accounts.tasks.notifications_send_pending",
        "schedule": 60.0,
    },
    "cases-release-idle-claims": {
        "task": "accounts.tasks.cases_release_idle_claims",
        "schedule": 300.0,
    },
    "appeals-age": {
        "task": "appeals.tasks.appeals_age",
        "schedule": float(env_int("APPEAL_AGING_SECONDS", 600, minimum=10)),
    },
    # The engine reacts to ingested data at once (a task after each batch); this sweeps up what a lost task left.
    "engine-react": {
        "task": "accounts.tasks.engine_react",
        "schedule": float(env_int("ENGINE_REACT_SWEEP_SECONDS", 10, minimum=1)),
    },
    # Reminders before an installment falls due (once per installment; the outbox's quiet hours hold them at night).
    "reminders-before-due": {
        "task": "accounts.tasks.reminders_before_due",
        "schedule": 3600.0,
    },
    "jobs-dispatch": {
        "task": "riskops.tasks.jobs_dispatch",
        "schedule": float(env_int("JOB_DISPATCH_SECONDS", 15, minimum=1)),
    },
    # The audit chain (riskops.core.audit_chain): events chained within seconds, the head signed every few minutes.
    "audit-seal": {
        "task": "riskops.tasks.audit_seal",
        "schedule": float(env_int("AUDIT_SEAL_SECONDS", 5, minimum=1)),
    },
    "audit-checkpoint": {
        "task": "riskops.tasks.audit_checkpoint",
        "schedule": float(env_int("AUDIT_CHECKPOINT_SECONDS", 300, minimum=10)),
    },
    # The dashboard's closed days (riskops.dashboard): counted once, soon after midnight; a missed run catches up.
    "dashboard-refresh": {
        "task": "riskops.tasks.dashboard_refresh",
        "schedule": float(env_int("DASHBOARD_REFRESH_SECONDS", 60, minimum=10)),
    },
    "reevaluate-all-nightly": {
        "task": "riskops.tasks.job_reevaluate_all",
        "schedule": __import__("celery.schedules", fromlist=["crontab"]).crontab(hour=2, minute=0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Notifications to borrowers go to an outbox and are sent by a pluggable sender.
NOTIFICATION_SENDER = os.environ.get("NOTIFICATION_SENDER", "accounts.notifications.ConsoleSender")
NOTIFICATION_FILE_PATH = os.environ.get("NOTIFICATION_FILE_PATH", str(VAR_DIR / "notifications.log"))
# Commits within this many seconds share one send task per server process (0: a task per commit).
NOTIFICATION_SEND_DELAY_SECONDS = env_int("NOTIFICATION_SEND_DELAY_SECONDS", 1)
# No borrower gets more than this many texts in any 24 hours, nor any in the quiet hours of their own time zone
# (Borrower.time_zone, else TIME_ZONE); what is held back waits in the outbox and goes out later, once.
NOTIFICATION_DAILY_MAX = env_int("NOTIFICATION_DAILY_MAX", 3, minimum=1)
NOTIFICATION_QUIET_HOURS = env_hours("NOTIFICATION_QUIET_HOURS", "21:00-08:00")
# Borrowers who were overdue before are reminded this many days before an installment falls due (0: never).
REMINDER_DAYS_BEFORE_DUE = env_int("REMINDER_DAYS_BEFORE_DUE", 3)

# --- The dashboard keeps the figures of this many closed days (riskops.dashboard); older days are counted live.
DASHBOARD_DAYS = env_int("DASHBOARD_DAYS", 400, minimum=1)
# A change may commit this long after its timestamp (the longest write transaction: a job's batch, JOB_BATCH_TIME_LIMIT):
# what the refresh keeps of today stops this long before it runs, and the page counts live from this long before that.
DASHBOARD_LATE_COMMIT_SECONDS = env_int("DASHBOARD_LATE_COMMIT_SECONDS", 300, minimum=1)

# --- Rule tuning: activating a draft (riskops.tuning.services.ruleset_activate)
# Its simulation must be this recent: the data it ran on keeps moving (events arrive every second).
RULES_EVIDENCE_MAX_AGE_MINUTES = env_int("RULES_EVIDENCE_MAX_AGE_MINUTES", 60, minimum=1)
# Its backtest this recent: it covers closed days, and a day later it misses one.
RULES_BACKTEST_MAX_AGE_MINUTES = env_int("RULES_BACKTEST_MAX_AGE_MINUTES", 1440, minimum=1)
# Above this many accounts newly frozen or released, or this much exposure (yuan), the approver types a reason.
RULES_BLAST_RADIUS_ACCOUNTS = env_int("RULES_BLAST_RADIUS_ACCOUNTS", 500, minimum=0)
RULES_BLAST_RADIUS_YUAN = env_int("RULES_BLAST_RADIUS_YUAN", 1_000_000, minimum=0)

# --- Risk engine
ENGINE_BATCH_SIZE = env_int("ENGINE_BATCH_SIZE", 2000, minimum=1)

# --- Ingestion: the events API's largest request body (10,000 items of about 1 KB at most); files uploaded on the
# Import page (kept there until their import job is done, outside the static and web roots) and their largest size.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
IMPORT_DIR = Path(os.environ.get("IMPORT_DIR", str(VAR_DIR / "imports")))
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)

# --- Case review
CASE_SLA_HOURS = env_int("CASE_SLA_HOURS", 48, minimum=1)
CASE_DUE_SOON_HOURS = env_int("CASE_DUE_SOON_HOURS", 8, minimum=1)
CASE_CLAIM_IDLE_MINUTES = env_int("CASE_CLAIM_IDLE_MINUTES", 30, minimum=1)
# Restoring a limit of this much or more (CNY) needs a second reviewer.
FOUR_EYES_LIMIT = env_int("FOUR_EYES_LIMIT", 50000, minimum=0)
# How long a reveal of personal data stays shown on the case page (a refresh within it neither asks nor audits again).
REVEAL_SECONDS = env_int("REVEAL_SECONDS", 300, minimum=0)
QUEUE_PAGE_SIZE = env_int("QUEUE_PAGE_SIZE", 50, minimum=5)

# --- Jobs
# Accounts per batch (one Celery task each); the selection is cut into id-ordered stretches of this size.
JOB_BATCH_SIZE = env_int("JOB_BATCH_SIZE", 5000, minimum=1)
if JOB_BATCH_SIZE > 5000:
    raise ImproperlyConfigured(f"JOB_BATCH_SIZE={JOB_BATCH_SIZE} must be at most 5000")
# A job that may unfreeze more accounts than this needs a second senior reviewer (bulk unfreeze always does).
JOB_FOUR_EYES_ACCOUNTS = env_int("JOB_FOUR_EYES_ACCOUNTS", 100, minimum=0)
# A batch sent this long ago and not done is sent again (its worker was lost); longer than any batch takes.
JOB_REDISPATCH_SECONDS = env_int("JOB_REDISPATCH_SECONDS", 300, minimum=5)
JOB_BATCH_TIME_LIMIT = env_int("JOB_BATCH_TIME_LIMIT", 240, minimum=5)

# --- Appeals
APPEAL_SLA_HOURS = env_int("APPEAL_SLA_HOURS", 72, minimum=1)
APPEAL_DUE_SOON_HOURS = env_int("APPEAL_DUE_SOON_HOURS", 12, minimum=1)
# How long the link in a freeze or more-information message stays valid.
APPEAL_LINK_DAYS = env_int("APPEAL_LINK_DAYS", 14, minimum=1)
# Outside the static and web roots; files there are only served through the permission-checked view.
APPEAL_DOCUMENTS_DIR = Path(os.environ.get("APPEAL_DOCUMENTS_DIR", str(VAR_DIR / "appeal-documents")))
# Appeal documents: clamd's unix socket (e.g. /run/clamav/clamd.ctl); when set, every document is scanned before it
# is stored, and an upload is refused while clamd cannot answer. Empty: no scanner (development, tests).
CLAMD_SOCKET = os.environ.get("CLAMD_SOCKET", "")
if CLAMD_SOCKET and not os.path.isabs(CLAMD_SOCKET):
    raise ImproperlyConfigured(f"CLAMD_SOCKET must be the absolute path of clamd's unix socket; got {CLAMD_SOCKET!r}")
# Where borrowers reach the console's public pages (the links in their messages).
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
if urlparse(PUBLIC_BASE_URL).scheme not in {"http", "https"} or not urlparse(PUBLIC_BASE_URL).netloc:
    raise ImproperlyConfigured(
        f"PUBLIC_BASE_URL must be an http(s) URL like https://risk.example.com; got {PUBLIC_BASE_URL!r}"
    )
# Five 10 MB documents and a statement; larger requests are refused before they are read.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The largest request body (bytes) an address takes, refused with a 413 before it is read
# (riskops.core.http.BodyLimitMiddleware): the borrower's appeal pages and the appeals API take up to 5 documents of
# 10 MiB (appeals.documents), the import page IMPORT_MAX_BYTES, the events API INGEST_MAX_BODY_BYTES (it answers
# its own 413 from there), each with 1 MiB for the form around them; every other address REQUEST_MAX_BYTES.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 1024 * 1024, minimum=16 * 1024)
_FORM_ROOM = 1024 * 1024
REQUEST_BODY_LIMITS = [
    ("/a/", 5 * 10 * 1024 * 1024 + _FORM_ROOM),
    ("/api/v1/appeals/", 5 * 10 * 1024 * 1024 + _FORM_ROOM),
    ("/jobs/import/", IMPORT_MAX_BYTES + _FORM_ROOM),
    ("/api/v1/events/", INGEST_MAX_BODY_BYTES + _FORM_ROOM),
]
DATA_UPLOAD_MAX_NUMBER_FILES = 10
FILE_UPLOAD_MAX_MEMORY_SIZE = 11 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "riskops.core.auth.TokenWithRolesAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "riskops.core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The API's OpenAPI 3 schema (/api/schema/) and its interactive page (/api/docs/).
SPECTACULAR_SETTINGS = {
    "TITLE": "RiskOps API",
    "DESCRIPTION": "Upstream systems send borrowers, lines and events (docs/IMPORT.md) and submit appeals; operators"
    " run jobs. Every error is a JSON object with `detail` (and `errors`, per item, for ingestion).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Browser-side hardening. The Content-Security-Policy (django-csp) allows scripts only from the console's own
# static files (no inline script, no eval: the pages' behaviour is in static/*.js, Swagger UI is the split view);
# styles may be inline (Plotly writes its own <style>); no framing, no plugins, forms post only here. Documents a
# borrower sent are served with their own stricter policy (appeals.views.review).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # pages send the token from the form or the <body>'s hx-headers, never from the cookie
if PROXY_COUNT:
    # The proxy in front terminates TLS and says so; only trusted when a proxy is declared.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    # Production: HTTPS only (HSTS for a year, subdomains and preload by default), cookies only over HTTPS. The health
    # check answers over plain HTTP, for load balancers probing inside the network.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

# --- Least privilege (issue 14, roles): a cap on the cases one operator holds, and API throttling per token.
# Claims and assignments beyond it are refused (accounts.services.cases.hold_cap).
MAX_CASES_PER_OPERATOR = env_int("MAX_CASES_PER_OPERATOR", 50, minimum=1)
# Requests per token (or session user; per address when anonymous), counted in the default cache (CACHE_URL: Redis
# shares the count between processes; without it each process counts its own). "<n>/<s|min|h|day>".
API_THROTTLE_RATE = os.environ.get("API_THROTTLE_RATE") or "600/min"
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", API_THROTTLE_RATE):
    raise ImproperlyConfigured(f"API_THROTTLE_RATE={API_THROTTLE_RATE!r} is not a rate like 600/min or 10/s")
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["riskops.core.throttling.TokenRateThrottle"]
