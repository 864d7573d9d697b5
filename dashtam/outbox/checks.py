"""The outbox's settings must be positive numbers."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

_POSITIVE = ("OUTBOX_SWEEP_INTERVAL", "OUTBOX_BATCH_SIZE", "OUTBOX_BROKER_RETRY_SECONDS",
             "OUTBOX_RETRY_MAX_SECONDS")


@register(Tags.compatibility)
def check_outbox_settings(app_configs=None, **kwargs):
    errors = []
    for n, name in enumerate(_POSITIVE, start=1):
        value = getattr(settings, name, None)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            errors.append(Error(f"{name}: must be a positive number (got {value!r})",
                                hint=f"Set the environment variable {name}.", id=f"dashtam_outbox.E{n:03d}"))
    return errors
