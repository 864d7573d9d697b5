"""Configuration checks: a bad environment fails at start-up, all problems in one message.

They run under manage.py (check, migrate, runserver), and at gunicorn, ASGI
and Celery start through ``dashtam.startup``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.checks import Warning as CheckWarning

from dashtam.config import parse_encryption_keys


def _err(var: str, msg: str, n: int) -> Error:
    return Error(f"{var}: {msg}", hint=f"Set the environment variable {var}.", id=f"dashtam.E{n:03d}")


def _dev_secret_err(var: str, msg: str, n: int) -> Error:
    """A missing secret outside production: the checkout's secrets were never generated."""
    from dashtam.dev_secrets import COMMAND

    error = _err(var, msg, n)
    if not settings.IS_PRODUCTION:
        error.hint = (f"Run `{COMMAND}` once in this checkout (make run and make test do), "
                      f"or set the environment variable {var}.")
    return error


@register(Tags.security, deploy=False)
def check_configuration(app_configs=None, **kwargs):
    errors: list[Error] = []
    prod = settings.IS_PRODUCTION

    if settings.DJANGO_ENV not in {"development", "test", "production"}:
        errors.append(_err("DJANGO_ENV", f"unknown value {settings.DJANGO_ENV!r} "
                           "(development, test or production)", 1))

    secret = settings.SECRET_KEY or ""
    if settings.SECRET_KEY_MISSING:
        errors.append(_dev_secret_err("DJANGO_SECRET_KEY", "is missing", 2))
    elif prod and (len(secret) < 50 or len(set(secret)) < 5):
        errors.append(_err("DJANGO_SECRET_KEY", "must be at least 50 random characters", 3))

    jwt_key = settings.JWT_SIGNING_KEY or ""
    if not jwt_key:
        errors.append(_err("JWT_SIGNING_KEY", "is missing", 4))
    elif len(jwt_key.encode()) < 32:
        errors.append(_err("JWT_SIGNING_KEY", "is weak: it must be at least 32 bytes", 5))
    elif jwt_key == secret:
        errors.append(_err("JWT_SIGNING_KEY", "must differ from DJANGO_SECRET_KEY", 6))

    _, problems = parse_encryption_keys(settings.FIELD_ENCRYPTION_KEYS or "")
    if problems:
        make = _dev_secret_err if not settings.FIELD_ENCRYPTION_KEYS else _err
        errors.append(make("FIELD_ENCRYPTION_KEYS", "; ".join(problems), 7))

    if settings.TRUSTED_PROXY_COUNT < 0:
        errors.append(_err("TRUSTED_PROXY_COUNT", "cannot be negative", 8))

    if prod:
        if settings.DEBUG:
            errors.append(_err("DJANGO_DEBUG", "must be off in production", 10))
        if not settings.ALLOWED_HOSTS:
            errors.append(_err("DJANGO_ALLOWED_HOSTS", "is missing", 11))
        if not settings.DATABASE_URL_SET or "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
            errors.append(_err("DATABASE_URL", "is missing: production needs postgres://...", 12))
        if not settings.REDIS_URL:
            errors.append(_err("REDIS_URL", "is missing: production needs Redis for the cache, "
                               "rate limits, lockout and revocation", 13))
        if not settings.DEFAULT_FROM_EMAIL:
            errors.append(_err("DEFAULT_FROM_EMAIL", "is missing", 14))
        if not settings.FRONTEND_URL:
            errors.append(_err("FRONTEND_URL", "is missing: links in emails point to it", 15))
        elif not settings.FRONTEND_URL.startswith("https://"):
            errors.append(_err("FRONTEND_URL", "must be an https:// URL in production", 16))
        if settings.EMAIL_BACKEND.endswith(("console.EmailBackend", "locmem.EmailBackend",
                                             "dummy.EmailBackend", "filebased.EmailBackend")):
            errors.append(_err("EMAIL_URL", "is missing: production needs smtp://... "
                               "or an anymail ESP (anymail://amazon_ses)", 17))
    return errors


@register(Tags.security, deploy=False)
def check_hardening(app_configs=None, **kwargs):
    """Token claims, the JSON depth bound and the legacy-hash re-check interval."""
    errors: list[Error] = []
    for n, var in ((60, "JWT_ISSUER"), (61, "JWT_AUDIENCE")):
        if not (getattr(settings, var, "") or "").strip():
            errors.append(_err(var, "must not be empty: every token carries and is checked against it", n))
    if settings.JSON_MAX_DEPTH < 2:
        errors.append(_err("JSON_MAX_DEPTH", "must be at least 2 (a JSON object with a list in it)", 62))
    if settings.PASSWORD_LEGACY_CHECK_SECONDS < 0:
        errors.append(_err("PASSWORD_LEGACY_CHECK_SECONDS", "cannot be negative", 63))
    return errors


# --- Proxies: TRUSTED_PROXY_COUNT=0 behind a proxy (checked at run time, warned once) ----------
logger = logging.getLogger("dashtam.checks")
_forwarded_for_seen = False


def untrusted_forwarded_for_warning() -> CheckWarning:
    return CheckWarning(
        "TRUSTED_PROXY_COUNT is 0, yet requests arrive carrying X-Forwarded-For: the server is "
        "probably behind a proxy, so every client shares the proxy's IP address (one client can "
        "spend everyone's rate limits and lock every login from that address).",
        hint="Set the environment variable TRUSTED_PROXY_COUNT to the number of proxies in front "
             "of the server (X-Forwarded-For is ignored until then).",
        id="dashtam.W001",
    )


def forwarded_for_observe(meta) -> None:
    """Called for every request: in production with TRUSTED_PROXY_COUNT=0, the first request
    carrying X-Forwarded-For logs ``dashtam.W001`` (once per process) and makes
    ``check_forwarded_for`` report it. Costs a dictionary lookup once it has warned."""
    global _forwarded_for_seen
    if _forwarded_for_seen or "HTTP_X_FORWARDED_FOR" not in meta:
        return
    if not settings.IS_PRODUCTION or settings.TRUSTED_PROXY_COUNT > 0:
        return
    _forwarded_for_seen = True
    warning = untrusted_forwarded_for_warning()
    logger.warning("%s: %s %s", warning.id, warning.msg, warning.hint)


def forwarded_for_reset() -> None:
    """Forget what was observed (tests; a process that re-reads its configuration)."""
    global _forwarded_for_seen
    _forwarded_for_seen = False


@register(Tags.security)
def check_forwarded_for(app_configs=None, **kwargs):
    """The run-time observation above, as a system check (for ``check`` run inside the process)."""
    if _forwarded_for_seen and settings.IS_PRODUCTION and settings.TRUSTED_PROXY_COUNT <= 0:
        return [untrusted_forwarded_for_warning()]
    return []
