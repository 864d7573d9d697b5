"""Start-up checks: a bad rate-limit configuration fails before the first request."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.utils.module_loading import import_string

from dashtam.ratelimit.rules import rule_problems


@register(Tags.security)
def check_rate_limits(app_configs=None, **kwargs):
    errors = [
        Error(f"rate limits: {problem}", hint="Fix the variable named in the message.",
              id="dashtam_ratelimit.E001")
        for problem in rule_problems(getattr(settings, "RATE_LIMIT_RULES", {}))
    ]
    path = getattr(settings, "RATELIMIT_EXCEPTION_CLASS", "")
    try:
        from dashtam.api.exceptions import RetryAfterError

        if not issubclass(import_string(path), RetryAfterError):
            raise TypeError(path)
    except (ImportError, TypeError):
        errors.append(Error(
            f"RATELIMIT_EXCEPTION_CLASS {path!r} must name a RetryAfterError subclass "
            "(429 RATE_LIMITED with Retry-After)", id="dashtam_ratelimit.E002"))
    for name in ("RATELIMIT_IPV4_MASK", "RATELIMIT_IPV6_MASK"):
        value = getattr(settings, name, None)
        top = 32 if "V4" in name else 128
        if value is not None and not (isinstance(value, int) and 0 < value <= top):
            errors.append(Error(f"{name}: must be a prefix length between 1 and {top}",
                                hint=f"Set the environment variable {name}.",
                                id="dashtam_ratelimit.E003"))
    return errors
