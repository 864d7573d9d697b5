"""Start-up checks for the session settings: one clear message per bad variable."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def session_settings_check(app_configs=None, **kwargs):
    errors = []

    def bad(var: str, why: str):
        errors.append(Error(f"{var} {why}", id=f"sessions_mgmt.E{len(errors) + 1:03d}",
                            hint=f"Set the environment variable {var}."))

    positive = ("ACCESS_TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME", "SESSION_MAX_AGE", "SESSION_RETENTION_DAYS",
                "SESSION_LAST_USED_RESOLUTION", "REVOCATION_CACHE_SECONDS")
    for name in positive:
        if getattr(settings, name, 0) <= 0:
            bad(name, "must be a positive number.")
    if settings.REFRESH_REUSE_GRACE_SECONDS < 0:
        bad("REFRESH_REUSE_GRACE_SECONDS", "must not be negative.")
    if settings.REVOCATION_CACHE_RETRY_SECONDS < 0:
        bad("REVOCATION_CACHE_RETRY_SECONDS", "must not be negative.")
    if 0 < settings.REFRESH_TOKEN_LIFETIME <= settings.ACCESS_TOKEN_LIFETIME:
        bad("REFRESH_TOKEN_LIFETIME", "must be longer than ACCESS_TOKEN_LIFETIME.")
    if 0 < settings.SESSION_MAX_AGE < settings.ACCESS_TOKEN_LIFETIME:
        bad("SESSION_MAX_AGE", "must be at least ACCESS_TOKEN_LIFETIME.")
    if settings.REFRESH_REUSE_GRACE_SECONDS > 300:
        bad("REFRESH_REUSE_GRACE_SECONDS", "must be at most 300 seconds: a longer grace lets a thief replay.")
    if settings.GEOIP_PATH and not Path(settings.GEOIP_PATH).is_file():
        bad("GEOIP_PATH", f"names no readable file ({settings.GEOIP_PATH!r}).")
    return errors
