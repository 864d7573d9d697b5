"""Accounts configuration checks."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_password_policy(app_configs=None, **kwargs):
    if settings.PASSWORD_POLICY not in {"composition", "nist"}:
        return [Error(
            f"PASSWORD_POLICY: unknown value {settings.PASSWORD_POLICY!r}",
            hint="Set PASSWORD_POLICY to 'composition' (default) or 'nist'.",
            id="accounts.E001",
        )]
    return []
