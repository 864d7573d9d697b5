"""Start-up checks for the audit settings: one clear message per bad variable."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

POSITIVE = (
    "AUDIT_RETENTION_DAYS",
    "AUDIT_SEAL_INTERVAL",
    "AUDIT_SEAL_BATCH_SIZE",
    "AUDIT_PURGE_INTERVAL",
    "AUDIT_PURGE_BATCH_SIZE",
    "AUDIT_ADMIN_COUNT_LIMIT",
    "AUDIT_HEAD_PUBLISH_INTERVAL",
)


@register(Tags.security)
def audit_settings_check(app_configs=None, **kwargs):
    errors = []
    for name in POSITIVE:
        value = getattr(settings, name, None)
        if not isinstance(value, int) or value <= 0:
            errors.append(Error(f"{name} must be a positive whole number.",
                                hint=f"Set the environment variable {name}.",
                                id=f"audit.E{len(errors) + 1:03d}"))
    key = getattr(settings, "AUDIT_HMAC_KEY", "") or ""
    if key and (len(key) < 32 or len(set(key)) < 5):
        errors.append(Error("AUDIT_HMAC_KEY must be at least 32 random characters (or unset: SECRET_KEY).",
                            hint="Set the environment variable AUDIT_HMAC_KEY.", id="audit.E020"))
    return errors
