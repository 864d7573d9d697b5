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


@register()
def check_mfa(app_configs=None, **kwargs):
    """Second factors (accounts/mfa): lifetimes and counts positive, network prefixes in range."""
    errors = []
    for n, variable in enumerate(("MFA_TOKEN_SECONDS", "MFA_TOKEN_MAX_FAILURES", "MFA_RECOVERY_CODE_COUNT"), 30):
        value = getattr(settings, variable)
        if value <= 0:
            errors.append(_err(variable, f"must be a positive number, not {value}", n))
    for n, (variable, top) in enumerate((("MFA_TOKEN_IPV4_PREFIX", 32), ("MFA_TOKEN_IPV6_PREFIX", 128)), 33):
        value = getattr(settings, variable)
        if not 0 <= value <= top:
            errors.append(_err(variable, f"must be between 0 and {top}, not {value}", n))
    if not (settings.MFA_TOTP_ISSUER or "").strip() or ":" in settings.MFA_TOTP_ISSUER:
        errors.append(_err("MFA_TOTP_ISSUER", "must be a non-empty name without ':'", 35))
    return errors
