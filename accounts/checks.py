"""Accounts configuration checks: refuse a bad password or lockout configuration at start-up."""

from django.conf import settings
from django.core.checks import Error, register


def _err(variable: str, message: str, n: int, hint: str = "") -> Error:
    return Error(f"{variable}: {message}", hint=hint or None, id=f"accounts.E{n:03d}")


@register()
def check_password_policy(app_configs=None, **kwargs):
    if settings.PASSWORD_POLICY not in {"composition", "nist"}:
        return [_err("PASSWORD_POLICY", f"unknown value {settings.PASSWORD_POLICY!r}", 1,
                     "Set PASSWORD_POLICY to 'composition' (default) or 'nist'.")]
    return []


@register()
def check_lockout_and_tokens(app_configs=None, **kwargs):
    errors = []
    positive = {
        "LOCKOUT_FAILURE_LIMIT": (settings.LOCKOUT_FAILURE_LIMIT, 2),
        "LOCKOUT_IP_FAILURE_LIMIT": (settings.LOCKOUT_IP_FAILURE_LIMIT, 3),
        "LOCKOUT_COOLOFF_SECONDS": (settings.LOCKOUT_COOLOFF_SECONDS, 4),
        "EMAIL_VERIFICATION_TOKEN_HOURS": (settings.EMAIL_VERIFICATION_TOKEN_HOURS, 5),
        "PASSWORD_RESET_TOKEN_MINUTES": (settings.PASSWORD_RESET_TOKEN_MINUTES, 6),
        "UNLOCK_TOKEN_MINUTES": (settings.UNLOCK_TOKEN_MINUTES, 10),
    }
    for variable, (value, n) in positive.items():
        if value <= 0:
            errors.append(_err(variable, f"must be a positive number, not {value}", n))
    if 0 < settings.LOCKOUT_IP_FAILURE_LIMIT < settings.LOCKOUT_FAILURE_LIMIT:
        errors.append(_err(
            "LOCKOUT_IP_FAILURE_LIMIT", "must not be lower than LOCKOUT_FAILURE_LIMIT", 7,
            "The per-IP threshold spans every account behind one address (an office NAT).",
        ))
    if getattr(settings, "AXES_COOLOFF_TIME", None) is None:
        errors.append(_err("LOCKOUT_COOLOFF_SECONDS", "AXES_COOLOFF_TIME is unset: locks would never end", 8))
    return errors


@register()
def check_email_backend(app_configs=None, **kwargs):
    """An ESP backend whose SDK is missing would only fail when the first email is sent."""
    backend = getattr(settings, "EMAIL_BACKEND", "")
    if backend == "anymail.backends.amazon_ses.EmailBackend":
        try:
            import boto3  # noqa: F401
        except ImportError:
            return [_err("EMAIL_URL", "anymail://amazon_ses needs boto3 (requirements/prod.txt)", 9)]
    return []


@register()
def check_name_length(app_configs=None, **kwargs):
    value = settings.ACCOUNT_NAME_MAX_LENGTH
    if not 1 <= value <= 150:
        return [_err("ACCOUNT_NAME_MAX_LENGTH", f"must be between 1 and 150 (the column's size), not {value}", 20)]
    return []
