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
    return errors
