"""Passkeys configuration checks: a relying party that browsers would refuse fails at start-up."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register


def _err(variable: str, message: str, n: int, hint: str = "") -> Error:
    return Error(f"{variable}: {message}", hint=hint or None, id=f"passkeys.E{n:03d}")


@register()
def check_webauthn(app_configs=None, **kwargs):
    errors = []
    rp_id = settings.WEBAUTHN_RP_ID
    if not rp_id or any(c in rp_id for c in "/:@ ") or rp_id != rp_id.lower():
        errors.append(_err("WEBAUTHN_RP_ID", f"{rp_id!r} is not a lower-case host name", 1,
                           "The relying party ID is a domain such as example.com (no scheme, port or path); "
                           "in production it defaults to FRONTEND_URL's host."))
    if not settings.WEBAUTHN_RP_NAME:
        errors.append(_err("WEBAUTHN_RP_NAME", "must not be empty", 2))
    if not settings.WEBAUTHN_ORIGINS:
        errors.append(_err("WEBAUTHN_ORIGINS", "must name at least one origin", 3,
                           "In production it defaults to FRONTEND_URL's origin."))
    for origin in settings.WEBAUTHN_ORIGINS:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host or parts.path or parts.query or parts.fragment:
            errors.append(_err("WEBAUTHN_ORIGINS", f"{origin!r} is not an origin (scheme://host[:port])", 4))
            continue
        if parts.scheme == "http" and host != "localhost":
            errors.append(_err("WEBAUTHN_ORIGINS", f"{origin!r}: browsers allow passkeys over http only "
                                                   "on localhost", 5))
        if rp_id and host != rp_id and not host.endswith("." + rp_id):
            errors.append(_err("WEBAUTHN_ORIGINS", f"{origin!r} is not within WEBAUTHN_RP_ID {rp_id!r}", 6,
                               "Each origin's host must be the RP ID or one of its subdomains."))
    if not 0 < settings.WEBAUTHN_CHALLENGE_SECONDS <= 300:
        errors.append(_err("WEBAUTHN_CHALLENGE_SECONDS", "must be between 1 and 300 seconds", 7))
    if settings.WEBAUTHN_USER_VERIFICATION not in ("preferred", "required"):
        errors.append(_err("WEBAUTHN_USER_VERIFICATION", "must be 'preferred' or 'required'", 8))
    if settings.WEBAUTHN_MAX_PASSKEYS <= 0:
        errors.append(_err("WEBAUTHN_MAX_PASSKEYS", "must be a positive number", 9))
    return errors
