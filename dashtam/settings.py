"""Dashtam settings: one module, every value read from the environment.

DJANGO_ENV selects the defaults: ``development`` (the embedded default that
``make run`` uses), ``test`` and ``production``. Production has no default for
any secret; what is missing or weak is reported by the system checks in
``dashtam/checks.py`` (all problems in one message) rather than by an exception
on the first one, so an operator fixes the whole configuration in one pass.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import environ

from dashtam import dev_secrets
from dashtam.config import browser_url, derive_jwt_key
from dashtam.ratelimit.rule_table import parse_rate_rules

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Unset (in the environment and in .env), it is "production": gunicorn (dashtam.wsgi),
# ASGI and Celery never fall back to DEBUG because a variable was forgotten. manage.py
# (and so `make run` and its worker) defaults to "development" through
# DJANGO_ENV_DEFAULT; under pytest the default is "test" (pytest-django reads the
# settings before any conftest could set the variable).
DJANGO_ENV = env.str(
    "DJANGO_ENV",
    default="test" if "pytest" in sys.modules else env.str("DJANGO_ENV_DEFAULT", default="production"),
).strip().lower()
IS_PRODUCTION = DJANGO_ENV == "production"
IS_TEST = DJANGO_ENV == "test"
IS_DEVELOPMENT = not (IS_PRODUCTION or IS_TEST)


# Development secrets: generated once per checkout by `manage.py init_dev_secrets` (make run
# runs it first) into .dev-secrets.json, git-ignored. Settings only read the file; they write
# nothing. Without it (and without the variables) the system checks name the command, like any
# other missing secret. The test environment falls back to fixed, test-only values (every
# process of a test run, workers included, derives the same ones), so `pytest` runs from a
# clean clone; they are never used outside DJANGO_ENV=test.
_DEV = {} if IS_PRODUCTION else dev_secrets.read(BASE_DIR)
if IS_TEST and not _DEV:
    _DEV = dev_secrets.for_tests()

# --- Core -------------------------------------------------------------------
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV.get("DJANGO_SECRET_KEY", ""))
# Django refuses an empty SECRET_KEY with a traceback on first use. Keep a marker
# instead, so the system checks can report it together with everything else.
SECRET_KEY_MISSING = not SECRET_KEY
SECRET_KEY = SECRET_KEY or "missing-DJANGO_SECRET_KEY"
DEBUG = env.bool("DJANGO_DEBUG", default=IS_DEVELOPMENT)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=[] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"],
)
ROOT_URLCONF = "dashtam.urls"
WSGI_APPLICATION = "dashtam.wsgi.application"
ASGI_APPLICATION = "dashtam.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "dashtam",
    "django_ratelimit",
    "dashtam.ratelimit",
    "dashtam.outbox",
    "audit",
    "accounts",
    "accounts.passkeys",
    "sessions_mgmt",
    "providers",
    "account_pages",
]

MIDDLEWARE = [
    # Request context first: every response, even a crash, carries X-Request-ID.
    "dashtam.context_middleware.RequestContextMiddleware",
    # Request count and latency by route and status (off with METRICS_ENABLED=false).
    "dashtam.observability.middleware.MetricsMiddleware",
    "dashtam.api.middleware.ProblemDetailsMiddleware",
    "dashtam.api.middleware.HttpsOnlyApiMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, the cookie session, request.user from the session and flash
    # messages serve the pages only: the JSON API (/api/v1/) passes them by
    # (dashtam/pages_middleware.py). Security headers, CORS and the rest run for every request.
    "dashtam.pages_middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "dashtam.pages_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "dashtam.pages_middleware.AuthenticationMiddleware",
    "dashtam.pages_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashtam.pages_middleware.CSPMiddleware",  # django-csp's, its policy text built once
    "dashtam.ratelimit.middleware.RateLimitMiddleware",
    # Axes last, as its documentation asks.
    "axes.middleware.AxesMiddleware",
]

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

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default="sqlite:///" + str(BASE_DIR / "db.sqlite3"),
    )
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has a web process and a worker writing: wait for the lock.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
DATABASE_URL_SET = "DATABASE_URL" in env

# --- Observability (docs/observability.md) -------------------------------------
# Prometheus metrics at /metrics, served only to a bearer token or an allowed network.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Celery queues whose depth is read at scrape time.
METRICS_CELERY_QUEUES = env.list("METRICS_CELERY_QUEUES", default=["celery"])
# gunicorn's worker processes share their samples through files here (prometheus_client
# reads the variable itself, at import: set it in the environment before start).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# OpenTelemetry tracing: off unless an OTLP/HTTP endpoint is given.
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="dashtam")

# --- Cache (Redis or local memory) ------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="dashtam"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.5),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.5),
                # Times every command for dashtam_cache_operation_duration_seconds.
                **({"REDIS_CLIENT_CLASS": "dashtam.observability.cache.TimedRedis"} if METRICS_ENABLED else {}),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "dashtam.observability.cache.TimedLocMemCache" if METRICS_ENABLED
            else "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "dashtam",
        }
    }

# --- Passwords ----------------------------------------------------------------
PASSWORD_HASHERS = [
    # Argon2id stores every new password. Tests use the same algorithm with cheaper
    # parameters (a test proves production stores argon2id with Django's parameters).
    "accounts.hashers.FastArgon2PasswordHasher" if IS_TEST
    else "accounts.hashers.Argon2idPasswordHasher",  # Django's, timed into the access log
    # Users migrated from the earlier Dashtam carry plain bcrypt, 12 rounds, stored as
    # "bcrypt$$2b$12$..." (Django's BCryptPasswordHasher format); upgraded on login.
    "accounts.hashers.LegacyBCryptPasswordHasher",
]
# How often (seconds) a process re-reads whether legacy bcrypt hashes are still stored:
# while any are, every login also pays one bcrypt at their cost (equal login timing).
# Tests re-read on every login: each test brings its own rows into the same process.
PASSWORD_LEGACY_CHECK_SECONDS = env.int("PASSWORD_LEGACY_CHECK_SECONDS", default=0 if IS_TEST else 300)
PASSWORD_POLICY = env.str("PASSWORD_POLICY", default="composition")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "accounts.validators.PolicyPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend at the same hash cost on every path (accounts/hashers.py).
    "accounts.backends.EqualCostModelBackend",
]

# --- Static files -------------------------------------------------------------
STATIC_URL = "/static/"
# Production serves collected files (collectstatic) through whitenoise; elsewhere the finders do.
STATIC_ROOT = BASE_DIR / "staticfiles" if IS_PRODUCTION else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not IS_PRODUCTION

# --- Request limits -------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)

# --- Proxies and client IP ------------------------------------------------------
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Security headers -----------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
if IS_PRODUCTION and TRUSTED_PROXY_COUNT > 0:
    # Only a proxy of ours may say the client spoke HTTPS: with no trusted proxy a
    # client talking straight to the server could claim it and pass the HTTPS-only check.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if IS_PRODUCTION:
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /api/ over plain HTTP is refused (HttpsOnlyApiMiddleware), never redirected:
    # a redirect would already have sent the bearer token in clear. The admin
    # pages are redirected by the same middleware.
    SECURE_SSL_REDIRECT = False
REQUIRE_HTTPS = env.bool("REQUIRE_HTTPS", default=IS_PRODUCTION)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
    }
}

# --- Logging (JSON lines, request id on each) -----------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "dashtam.logging.RequestContextFilter"}},
    "formatters": {"json": {"()": "dashtam.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},  # we log requests ourselves, once
        "django.server": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        # The filesystem broker has no host name; kombu warns about it on every publish.
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- DRF and OpenAPI ----------------------------------------------------------
# Deepest nesting of lists/objects a JSON body may have (dashtam.api.parsers): deeper is a 400.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["sessions_mgmt.authentication.SessionJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["dashtam.api.parsers.JSONParser"],  # DRF's, bounded in depth
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "dashtam.api.negotiation.ContentNegotiation",  # DRF's, short path
    "DEFAULT_SCHEMA_CLASS": "dashtam.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "dashtam.api.exceptions.problem_exception_handler",
    # Rate limits run after authentication, so user keys know the JWT's user.
    "DEFAULT_THROTTLE_CLASSES": ["dashtam.ratelimit.throttling.RateLimitRulesThrottle"],
    "DEFAULT_PAGINATION_CLASS": "dashtam.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dashtam API",
    "DESCRIPTION": "Connect brokerage accounts over OAuth and see them in one place.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dashtam.api.schema.add_problem_responses",
    ],
}

# --- JWT (simplejwt; sessions_mgmt adds sid and token version) -----------------
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="") or (
    "" if IS_PRODUCTION else derive_jwt_key(SECRET_KEY)
)
# Every access and refresh token names who issued it and for whom; a token without
# these two claims, or with other values, is refused (a key shared with another
# service cannot mint tokens we accept).
JWT_ISSUER = env.str("JWT_ISSUER", default="dashtam")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="dashtam-api")
ACCESS_TOKEN_LIFETIME = env.int("ACCESS_TOKEN_LIFETIME", default=30 * 60)  # seconds
REFRESH_TOKEN_LIFETIME = env.int("REFRESH_TOKEN_LIFETIME", default=30 * 24 * 3600)  # seconds
SESSION_MAX_AGE = env.int("SESSION_MAX_AGE", default=90 * 24 * 3600)  # seconds
REFRESH_REUSE_GRACE_SECONDS = env.int("REFRESH_REUSE_GRACE_SECONDS", default=0)
SESSION_RETENTION_DAYS = env.int("SESSION_RETENTION_DAYS", default=90)
SESSION_LAST_USED_RESOLUTION = env.int("SESSION_LAST_USED_RESOLUTION", default=60)  # seconds
GEOIP_PATH = env.str("GEOIP_PATH", default="")
# Revocation cache (sessions_mgmt.revocation): how long an "active" entry may be
# trusted, and how long to use the database alone after a cache error.
REVOCATION_CACHE_SECONDS = env.int("REVOCATION_CACHE_SECONDS", default=300)
REVOCATION_CACHE_RETRY_SECONDS = env.int("REVOCATION_CACHE_RETRY_SECONDS", default=5)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=ACCESS_TOKEN_LIFETIME),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=REFRESH_TOKEN_LIFETIME),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,  # accounts updates it, with the signals simplejwt skips
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ISSUER": JWT_ISSUER,  # set on every token and verified (PyJWT requires the claim)
    "AUDIENCE": JWT_AUDIENCE,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "LEEWAY": 5,
}

# --- Accounts -------------------------------------------------------------------
EMAIL_VERIFICATION_TOKEN_HOURS = env.int("EMAIL_VERIFICATION_TOKEN_HOURS", default=24)
PASSWORD_RESET_TOKEN_MINUTES = env.int("PASSWORD_RESET_TOKEN_MINUTES", default=15)
# Magic links (sign in by email): POST auth/magic-link and auth/magic-link/verify (docs/accounts.md).
MAGIC_LINK_ENABLED = env.bool("MAGIC_LINK_ENABLED", default=True)
MAGIC_LINK_TOKEN_MINUTES = env.int("MAGIC_LINK_TOKEN_MINUTES", default=15)
# The account pages under /account/ (account_pages/; docs/pages.md).
ACCOUNT_PAGES_ENABLED = env.bool("ACCOUNT_PAGES_ENABLED", default=True)
# The longest first or last name accepted (accounts/names.py); the column holds 150.
ACCOUNT_NAME_MAX_LENGTH = env.int("ACCOUNT_NAME_MAX_LENGTH", default=64)
# Where `make run` serves (it sets this from HOST and PORT); development defaults
# for FRONTEND_URL and the sandbox provider's URLs follow it.
DEV_SERVER_URL = env.str("DEV_SERVER_URL", default="http://127.0.0.1:8000").rstrip("/")
# Outside production the front end is this app's own account pages (/account/, account_pages):
# every link in an email works after `make run`. They are addressed as localhost (not
# 127.0.0.1), the origin where passkeys work and where the pages keep the bearer.
FRONTEND_URL = env.str(
    "FRONTEND_URL", default="" if IS_PRODUCTION else browser_url(DEV_SERVER_URL) + "/account"
).rstrip("/")

# --- Second factors (accounts/mfa: TOTP, recovery codes, the login step) -------------
# Staff enter /admin/ only after a TOTP code (on in production, off in development and test).
ADMIN_REQUIRE_MFA = env.bool("ADMIN_REQUIRE_MFA", default=IS_PRODUCTION)
MFA_TOKEN_SECONDS = env.int("MFA_TOKEN_SECONDS", default=300)  # life of a login step's mfa_token
MFA_TOKEN_MAX_FAILURES = env.int("MFA_TOKEN_MAX_FAILURES", default=5)  # wrong codes before it dies
# The mfa_token is bound to the client's network: its IPv4 /24 or IPv6 /64, and its user agent.
MFA_TOKEN_IPV4_PREFIX = env.int("MFA_TOKEN_IPV4_PREFIX", default=24)
MFA_TOKEN_IPV6_PREFIX = env.int("MFA_TOKEN_IPV6_PREFIX", default=64)
MFA_RECOVERY_CODE_COUNT = env.int("MFA_RECOVERY_CODE_COUNT", default=10)
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Dashtam")
# axes keeps the POST data of a failed attempt: the admin's code step must not leave codes there.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code"]

# --- Lockout (django-axes, database handler: the lock survives a Redis outage) -----
LOCKOUT_FAILURE_LIMIT = env.int("LOCKOUT_FAILURE_LIMIT", default=10)
LOCKOUT_IP_FAILURE_LIMIT = env.int("LOCKOUT_IP_FAILURE_LIMIT", default=50)
LOCKOUT_COOLOFF_SECONDS = env.int("LOCKOUT_COOLOFF_SECONDS", default=3600)
# The lockout email's single-use "unlock and sign in" link (POST auth/unlock) lives this long.
UNLOCK_TOKEN_MINUTES = env.int("UNLOCK_TOKEN_MINUTES", default=15)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# The database handler, extended with the per-IP threshold (accounts/lockout.py).
AXES_HANDLER = "accounts.lockout.LockoutHandler"
# Read LOCKOUT_FAILURE_LIMIT / LOCKOUT_COOLOFF_SECONDS at call time (accounts/lockout.py).
AXES_FAILURE_LIMIT = "accounts.lockout.failure_limit"
AXES_COOLOFF_TIME = "accounts.lockout.cool_off"
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# A lock lasts LOCKOUT_COOLOFF_SECONDS from the failure that set it; attempts during the
# lock are refused without extending it, so Retry-After is the real time left.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_FORM_FIELD = "email"
AXES_USERNAME_CALLABLE = "accounts.lockout.axes_username"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "dashtam.context.client_ip_for_request"
AXES_VERBOSE = False
# The audit trail (auth.login.succeeded, auth.logout) is the sign-in history, kept 400 days
# and tamper-evident; axes' AccessLog would be a second copy that nothing purges, and one
# more INSERT per login.
AXES_DISABLE_ACCESS_LOG = True

# --- Passkeys (WebAuthn; accounts/passkeys) ----------------------------------------------
# The relying party: its ID (a host name, no scheme or port) and the origins a browser may
# sign in from (comma-separated). Development: "localhost" and the development server's
# origin addressed as localhost (a WebAuthn RP ID cannot be an IP address). Production:
# FRONTEND_URL's host and origin unless set. accounts/passkeys/checks.py refuses a mismatch.
def _webauthn_defaults() -> tuple[str, str]:
    from urllib.parse import urlsplit

    if IS_PRODUCTION:
        parts = urlsplit(FRONTEND_URL)
        return (parts.hostname or ""), (f"{parts.scheme}://{parts.netloc}" if parts.netloc else "")
    parts = urlsplit(DEV_SERVER_URL)
    host = "localhost" if parts.hostname in ("127.0.0.1", "::1", None) else parts.hostname
    return "localhost", f"{parts.scheme or 'http'}://{host}{f':{parts.port}' if parts.port else ''}"


_WEBAUTHN_RP_ID, _WEBAUTHN_ORIGINS = _webauthn_defaults()
WEBAUTHN_RP_ID = env.str("WEBAUTHN_RP_ID", default=_WEBAUTHN_RP_ID).strip()
WEBAUTHN_RP_NAME = env.str("WEBAUTHN_RP_NAME", default="Dashtam").strip()
WEBAUTHN_ORIGINS = [o.strip().rstrip("/") for o in env.list("WEBAUTHN_ORIGINS", default=[_WEBAUTHN_ORIGINS])
                    if o.strip()]
# Life of a registration or sign-in challenge (server-side, single-use; at most 300 seconds).
WEBAUTHN_CHALLENGE_SECONDS = env.int("WEBAUTHN_CHALLENGE_SECONDS", default=300)
# "preferred" (default) or "required": whether the authenticator must verify the person (PIN, biometrics).
WEBAUTHN_USER_VERIFICATION = env.str("WEBAUTHN_USER_VERIFICATION", default="preferred").strip()
WEBAUTHN_MAX_PASSKEYS = env.int("WEBAUTHN_MAX_PASSKEYS", default=20)  # per account

# --- Email -------------------------------------------------------------------------
EMAIL_URL = env.str("EMAIL_URL", default="memorymail://" if IS_TEST else "consolemail://")
# django-environ knows smtp://, consolemail:// etc., not anymail:// (handled just below).
_EMAIL = (env.email_url_config(EMAIL_URL) if "://" in EMAIL_URL and not EMAIL_URL.startswith("anymail")
          else {})
EMAIL_BACKEND = _EMAIL.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = _EMAIL.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _EMAIL.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_EMAIL.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_EMAIL.get("EMAIL_USE_SSL", False))
EMAIL_SSL_CERTFILE = _EMAIL.get("EMAIL_SSL_CERTFILE")
EMAIL_SSL_KEYFILE = _EMAIL.get("EMAIL_SSL_KEYFILE")
EMAIL_FILE_PATH = _EMAIL.get("EMAIL_FILE_PATH", "")
if EMAIL_URL.startswith("anymail"):
    # EMAIL_URL=anymail://amazon_ses etc.; ANYMAIL_* settings configure the ESP.
    EMAIL_BACKEND = "anymail.backends.{}.EmailBackend".format(EMAIL_URL.split("://", 1)[1].strip("/"))
    ANYMAIL = {k[len("ANYMAIL_"):]: v for k, v in env.ENVIRON.items() if k.startswith("ANYMAIL_")}
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="" if IS_PRODUCTION else "Dashtam <no-reply@dashtam.local>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery --------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_EMBEDDED = not CELERY_BROKER_URL
# A test run's embedded broker is its own: nothing left in a developer's queue by
# `make run`, or by another test run, reaches its workers. The folders are made when the
# Celery app is configured (dashtam/celery.py), not here: settings write nothing.
CELERY_DATA_DIR = Path(env.str(
    "CELERY_DATA_DIR",
    default=str(Path(tempfile.gettempdir()) / f"dashtam-celery-{secrets.token_hex(8)}") if IS_TEST
    else str(BASE_DIR / "var" / "celery"),
))
if CELERY_EMBEDDED:
    # kombu's filesystem transport: one machine, no broker to run (make run).
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
        "polling_interval": env.float("CELERY_POLLING_INTERVAL", default=0.2),
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=IS_TEST)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON logging in workers
# Console email (development) prints as written, not as a scrubbed log line.
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_DATA_DIR / "beat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Each app's periodic work. Tasks are idempotent and safe to overlap.
    "accounts-cleanup-tokens": {  # accounts: email tokens expired for a week, daily
        "task": "accounts.tasks.cleanup_account_tokens",
        "schedule": env.int("ACCOUNT_TOKEN_CLEANUP_INTERVAL", default=24 * 3600),
    },
    "sessions-cleanup": {  # sessions_mgmt: old sessions and expired token rows, daily
        "task": "sessions_mgmt.tasks.cleanup_sessions",
        "schedule": env.int("SESSION_CLEANUP_INTERVAL", default=24 * 3600),
    },
    "providers-refresh-due-tokens": {  # providers: refresh tokens about to expire
        "task": "providers.tasks.refresh_due_tokens",
        "schedule": env.int("PROVIDER_REFRESH_INTERVAL", default=60),
    },
    "providers-sync-due-connections": {  # providers: sync every PROVIDER_SYNC_MINUTES
        "task": "providers.tasks.sync_due_connections",
        "schedule": env.int("PROVIDER_SYNC_CHECK_INTERVAL", default=300),
    },
    "providers-reauth-warnings": {  # providers: warn before refresh tokens die
        "task": "providers.tasks.warn_reauth_due",
        "schedule": env.int("PROVIDER_REAUTH_WARNING_INTERVAL", default=3600),
    },
    "providers-oauth-states-cleanup": {  # providers: forget expired OAuth states, daily
        "task": "providers.tasks.cleanup_oauth_states",
        "schedule": env.int("PROVIDER_OAUTH_CLEANUP_INTERVAL", default=24 * 3600),
    },
    "audit-seal": {  # audit: seal new events into the hash chain, in batches
        "task": "audit.tasks.seal_audit_chain",
        "schedule": env.int("AUDIT_SEAL_INTERVAL", default=60),
    },
    "audit-purge": {  # audit: delete events older than AUDIT_RETENTION_DAYS, in batches
        "task": "audit.tasks.purge_audit_events",
        "schedule": env.int("AUDIT_PURGE_INTERVAL", default=24 * 3600),
    },
    "audit-publish-head": {  # audit: the chain's head to the log and the admin (audit_verify --against)
        "task": "audit.tasks.publish_audit_chain_head",
        "schedule": env.int("AUDIT_HEAD_PUBLISH_INTERVAL", default=300),
    },
    "outbox-sweep": {  # dashtam.outbox: publish the tasks a broker outage kept back
        "task": "dashtam.outbox.tasks.sweep_outbox",
        "schedule": env.int("OUTBOX_SWEEP_INTERVAL", default=30),
    },
}
# --- Task outbox (dashtam.outbox): what a broker outage cannot lose ---------------------------
OUTBOX_SWEEP_INTERVAL = env.int("OUTBOX_SWEEP_INTERVAL", default=30)  # seconds between sweeps
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=500)  # rows published per transaction
# After a failed publish, a process writes tasks straight to the outbox for this long.
OUTBOX_BROKER_RETRY_SECONDS = env.float("OUTBOX_BROKER_RETRY_SECONDS", default=5)
OUTBOX_RETRY_MAX_SECONDS = env.int("OUTBOX_RETRY_MAX_SECONDS", default=600)  # longest wait between tries

# --- Audit -----------------------------------------------------------------------------
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=400)
# The hash chain is sealed by a periodic task, in batches, off the request path.
AUDIT_SEAL_INTERVAL = env.int("AUDIT_SEAL_INTERVAL", default=60)  # seconds
AUDIT_SEAL_BATCH_SIZE = env.int("AUDIT_SEAL_BATCH_SIZE", default=1000)
AUDIT_PURGE_INTERVAL = env.int("AUDIT_PURGE_INTERVAL", default=24 * 3600)  # seconds
AUDIT_PURGE_BATCH_SIZE = env.int("AUDIT_PURGE_BATCH_SIZE", default=5000)
# Off when the purge runs under its own database role (manage.py audit_purge), not from beat.
AUDIT_PURGE_ENABLED = env.bool("AUDIT_PURGE_ENABLED", default=True)
# Seconds between publications of the chain's head (seq, hash) to the log and the admin.
AUDIT_HEAD_PUBLISH_INTERVAL = env.int("AUDIT_HEAD_PUBLISH_INTERVAL", default=300)
# The row-hash key (HMAC-SHA256), never stored in the database; SECRET_KEY when unset.
# Older keys stay in AUDIT_HMAC_KEY_FALLBACKS for as long as rows hashed with them are kept.
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default="")
AUDIT_HMAC_KEY_FALLBACKS = env.list("AUDIT_HMAC_KEY_FALLBACKS", default=[])
# The admin counts at most this many matching rows (no COUNT(*) over the whole table).
AUDIT_ADMIN_COUNT_LIMIT = env.int("AUDIT_ADMIN_COUNT_LIMIT", default=10000)

# --- Rate limits (inbound and outbound share dashtam/ratelimit) ----------------------------
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = env.str("RATELIMIT_USE_CACHE", default="default")
RATELIMIT_EXCEPTION_CLASS = "dashtam.ratelimit.exceptions.RateLimited"
# Clients are counted per address, IPv6 per /64 (one subscriber's prefix).
RATELIMIT_IPV4_MASK = env.int("RATELIMIT_IPV4_MASK", default=32)
RATELIMIT_IPV6_MASK = env.int("RATELIMIT_IPV6_MASK", default=64)
# After a cache error, requests are served uncounted (fail open) without retrying the
# cache for this many seconds, so a dead Redis costs no connect timeout per request.
RATELIMIT_CACHE_RETRY_SECONDS = env.int("RATELIMIT_CACHE_RETRY_SECONDS", default=5)
# The rule table (dashtam/ratelimit/rule_table.py): RATE_LIMIT_<NAME>=20/m overrides a rate, =off disables it.
RATE_LIMIT_RULES = parse_rate_rules(env)

# --- Providers ---------------------------------------------------------------------------
FIELD_ENCRYPTION_KEYS = env.str(
    "FIELD_ENCRYPTION_KEYS", default=_DEV.get("FIELD_ENCRYPTION_KEYS", "")
)
SCHWAB_CLIENT_ID = env.str("SCHWAB_CLIENT_ID", default="")
SCHWAB_CLIENT_SECRET = env.str("SCHWAB_CLIENT_SECRET", default="")
SCHWAB_REDIRECT_URI = env.str("SCHWAB_REDIRECT_URI", default="")
SCHWAB_API_BASE_URL = env.str("SCHWAB_API_BASE_URL", default="https://api.schwabapi.com").rstrip("/")
SCHWAB_RATE_LIMIT = env.str("SCHWAB_RATE_LIMIT", default="120/m")
HTTP_TIMEOUT_CONNECT = env.float("HTTP_TIMEOUT_CONNECT", default=10)
HTTP_TIMEOUT_READ = env.float("HTTP_TIMEOUT_READ", default=30)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=3)
CIRCUIT_BREAKER_FAILURE_THRESHOLD = env.int("CIRCUIT_BREAKER_FAILURE_THRESHOLD", default=5)
CIRCUIT_BREAKER_RESET_SECONDS = env.int("CIRCUIT_BREAKER_RESET_SECONDS", default=60)
OAUTH_STATE_TTL_SECONDS = env.int("OAUTH_STATE_TTL_SECONDS", default=600)
PROVIDER_REFRESH_AHEAD = env.int("PROVIDER_REFRESH_AHEAD", default=300)  # seconds
PROVIDER_REFRESH_BATCH = env.int("PROVIDER_REFRESH_BATCH", default=10_000)  # due tokens looked at per beat tick
# Due connections per refresh task the fan-out enqueues (Celery's per-message cost paid once per task).
PROVIDER_REFRESH_TASK_SIZE = env.int("PROVIDER_REFRESH_TASK_SIZE", default=20)
PROVIDER_REAUTH_WARNING_HOURS = env.int("PROVIDER_REAUTH_WARNING_HOURS", default=24)
PROVIDER_SYNC_MINUTES = env.int("PROVIDER_SYNC_MINUTES", default=60)
PROVIDER_MAX_CONSECUTIVE_FAILURES = env.int("PROVIDER_MAX_CONSECUTIVE_FAILURES", default=3)
# First retry delay of a failed token refresh task (doubled each retry, with jitter).
PROVIDER_REFRESH_RETRY_SECONDS = env.float("PROVIDER_REFRESH_RETRY_SECONDS", default=30)
SANDBOX_PROVIDER_ENABLED = env.bool("SANDBOX_PROVIDER_ENABLED", default=not IS_PRODUCTION)
# Backoff between retries of idempotent provider calls: full jitter up to base * 2**attempt.
HTTP_BACKOFF_BASE_SECONDS = env.float("HTTP_BACKOFF_BASE_SECONDS", default=0.5)
HTTP_BACKOFF_MAX_SECONDS = env.float("HTTP_BACKOFF_MAX_SECONDS", default=8)
# A Retry-After longer than this is not waited for in-line: the call fails as unavailable.
HTTP_RETRY_AFTER_MAX_SECONDS = env.float("HTTP_RETRY_AFTER_MAX_SECONDS", default=10)
PROVIDER_SYNC_HISTORY_DAYS = env.int("PROVIDER_SYNC_HISTORY_DAYS", default=60)
# The sandbox provider is served by this app under /sandbox/ (Schwab's protocol).
SANDBOX_API_BASE_URL = env.str("SANDBOX_API_BASE_URL", default=DEV_SERVER_URL + "/sandbox").rstrip("/")
SANDBOX_REDIRECT_URI = env.str(
    "SANDBOX_REDIRECT_URI", default=DEV_SERVER_URL + "/api/v1/providers/oauth/sandbox/callback"
)
SANDBOX_RATE_LIMIT = env.str("SANDBOX_RATE_LIMIT", default="600/m")
SANDBOX_ACCESS_TOKEN_SECONDS = env.int("SANDBOX_ACCESS_TOKEN_SECONDS", default=600)
# Where the public OAuth callback sends the browser: FRONTEND_URL + this path +
# ?provider=&state=&code= (or &error=); the front end then POSTs providers/oauth/<key>/complete.
# In development FRONTEND_URL is this app's /account, and /account/connections/callback is the
# account pages' landing that completes the flow with the signed-in user's bearer. (The sandbox's
# /sandbox/oauth-result page, which shows the body to POST from /api/docs, is still served.)
PROVIDER_OAUTH_RESULT_PATH = env.str("PROVIDER_OAUTH_RESULT_PATH", default="/connections/callback")
# A refresh calls the provider holding no row lock, under a lease on the token row that lasts
# HTTP_TIMEOUT_CONNECT + HTTP_TIMEOUT_READ + this margin (seconds).
PROVIDER_REFRESH_LEASE_MARGIN_SECONDS = env.float("PROVIDER_REFRESH_LEASE_MARGIN_SECONDS", default=30)
# Fair use of a provider's outbound budget (docs/providers.md).
# A forced refresh (POST token-refresh) of a token obtained less than this ago is answered from
# the stored state, without calling the provider.
PROVIDER_TOKEN_FRESH_SECONDS = env.int("PROVIDER_TOKEN_FRESH_SECONDS", default=300)
# The share of each provider's outbound budget (SCHWAB_RATE_LIMIT, ...) that only the scheduled
# token refresh may spend; users' forced refreshes, syncs and code exchanges share the rest.
PROVIDER_REFRESH_RESERVED_SHARE = env.float("PROVIDER_REFRESH_RESERVED_SHARE", default=0.25)
# POST sync while a job is queued or running (for at most PROVIDER_SYNC_QUEUED_SECONDS), or less
# than PROVIDER_SYNC_COOLDOWN_SECONDS after one completed, answers 202 with that job.
PROVIDER_SYNC_QUEUED_SECONDS = env.int("PROVIDER_SYNC_QUEUED_SECONDS", default=900)
PROVIDER_SYNC_COOLDOWN_SECONDS = env.int("PROVIDER_SYNC_COOLDOWN_SECONDS", default=300)

# --- System checks silenced knowingly: the one list --------------------------------------
SILENCED_SYSTEM_CHECKS = [
    # axes.W006 asks for "ip_address" in AXES_LOCKOUT_PARAMETERS. We count per IP in
    # LockoutHandler instead: with it in the list, a successful login would also wipe
    # every other account's failures from the same IP (AXES_RESET_ON_SUCCESS).
    "axes.W006",
    # django-ratelimit refuses a local-memory cache because counts are per process. Without
    # Redis we run one process (make run), so the count is still exact there. Production
    # needs Redis: there both checks stand, beside dashtam.E013.
    *(["django_ratelimit.E003", "django_ratelimit.W001"] if not REDIS_URL and not IS_PRODUCTION else []),
    # /api/ over plain HTTP is refused by HttpsOnlyApiMiddleware, never redirected (see above).
    *(["security.W008"] if IS_PRODUCTION else []),
]

# --- Benchmarks ------------------------------------------------------------------------------
# Routes the bare baseline view (dashtam/bench_views.py) that `make bench` compares
# against. Off everywhere unless explicitly enabled, production included.
BENCH_ENDPOINTS = env.bool("BENCH_ENDPOINTS", default=False)
