"""Provider configuration checks: every problem named by its variable, at start-up."""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import Error, register


def _url_ok(value: str, *, https: bool) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in (("https",) if https else ("http", "https")) and bool(parsed.netloc)


@register()
def check_provider_settings(app_configs=None, **kwargs):
    from dashtam.ratelimit.counter import parse_rate

    errors = []
    production = settings.DJANGO_ENV == "production"
    schwab = {"SCHWAB_CLIENT_ID": settings.SCHWAB_CLIENT_ID, "SCHWAB_CLIENT_SECRET": settings.SCHWAB_CLIENT_SECRET,
              "SCHWAB_REDIRECT_URI": settings.SCHWAB_REDIRECT_URI}
    given = [name for name, value in schwab.items() if value]
    if given and len(given) < len(schwab):
        missing = ", ".join(name for name, value in schwab.items() if not value)
        errors.append(Error(f"Schwab is partly configured: {missing} missing",
                            hint="Set SCHWAB_CLIENT_ID, SCHWAB_CLIENT_SECRET and SCHWAB_REDIRECT_URI together, "
                                 "or none of them.", id="providers.E001"))
    if settings.SCHWAB_REDIRECT_URI and not _url_ok(settings.SCHWAB_REDIRECT_URI, https=production):
        errors.append(Error("SCHWAB_REDIRECT_URI is not an absolute URL" + (" over https" if production else ""),
                            id="providers.E002"))
    if not _url_ok(settings.SCHWAB_API_BASE_URL, https=production):
        errors.append(Error("SCHWAB_API_BASE_URL is not an absolute URL" + (" over https" if production else ""),
                            id="providers.E003"))
    for name in ("SCHWAB_RATE_LIMIT", "SANDBOX_RATE_LIMIT"):
        try:
            parse_rate(getattr(settings, name))
        except ValueError as exc:
            errors.append(Error(f"{name}: {exc}", id="providers.E004"))
    for name in ("HTTP_TIMEOUT_CONNECT", "HTTP_TIMEOUT_READ", "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                 "CIRCUIT_BREAKER_RESET_SECONDS", "OAUTH_STATE_TTL_SECONDS", "PROVIDER_SYNC_MINUTES",
                 "PROVIDER_MAX_CONSECUTIVE_FAILURES", "PROVIDER_SYNC_QUEUED_SECONDS"):
        if getattr(settings, name) <= 0:
            errors.append(Error(f"{name} must be positive", id="providers.E005"))
    for name in ("PROVIDER_REFRESH_LEASE_MARGIN_SECONDS", "PROVIDER_TOKEN_FRESH_SECONDS",
                 "PROVIDER_SYNC_COOLDOWN_SECONDS"):
        if getattr(settings, name) < 0:
            errors.append(Error(f"{name} must not be negative", id="providers.E005"))
    if not 0 <= settings.PROVIDER_REFRESH_RESERVED_SHARE < 1:
        errors.append(Error("PROVIDER_REFRESH_RESERVED_SHARE must be at least 0 and below 1 (a share of the "
                            "outbound budget kept for the scheduled token refresh)", id="providers.E008"))
    path = settings.PROVIDER_OAUTH_RESULT_PATH
    if not path.startswith("/") or path.startswith("//") or "?" in path or "#" in path:
        errors.append(Error("PROVIDER_OAUTH_RESULT_PATH must be a path starting with a single / "
                            "(no query or fragment)", id="providers.E009"))
    if settings.HTTP_MAX_RETRIES < 0:
        errors.append(Error("HTTP_MAX_RETRIES must not be negative", id="providers.E005"))
    if settings.OAUTH_STATE_TTL_SECONDS > 3600:
        errors.append(Error("OAUTH_STATE_TTL_SECONDS must be at most 3600 (an OAuth state is short-lived)",
                            id="providers.E006"))
    if production and settings.SANDBOX_PROVIDER_ENABLED:
        errors.append(Error("SANDBOX_PROVIDER_ENABLED must be off in production", id="providers.E007"))
    return errors
