"""Small pure helpers the settings module needs (no Django imports here)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

KEY_ENTRY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def browser_url(url: str) -> str:
    """The development server's URL as a browser should open it: a loopback IP becomes
    "localhost", the one host name a WebAuthn relying party (passkeys) accepts locally, so the
    account pages, the links in emails and passkeys all share one origin."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "::1"):
        return url
    return f"{parts.scheme}://localhost{f':{parts.port}' if parts.port else ''}{parts.path}"


def derive_jwt_key(secret_key: str) -> str:
    """Development/test only: a JWT key distinct from SECRET_KEY, derived from it."""
    return hmac.new(secret_key.encode(), b"dashtam-jwt-signing-key", hashlib.sha256).hexdigest()


def parse_encryption_keys(value: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Parse FIELD_ENCRYPTION_KEYS (``kid:base64url(32 bytes)``, newest first).

    Returns the ring and a list of problems. Keys are never padded, truncated or
    derived: a key that is not exactly 32 bytes is an error.
    """
    ring: list[tuple[str, bytes]] = []
    problems: list[str] = []
    if not value.strip():
        return ring, ["FIELD_ENCRYPTION_KEYS is empty"]
    seen: set[str] = set()
    for position, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        kid, sep, encoded = entry.partition(":")
        if not sep or not KEY_ENTRY.match(kid):
            problems.append(f"entry {position} is not 'kid:base64url(32 bytes)'")
            continue
        if kid in seen:
            problems.append(f"key id {kid!r} appears twice")
            continue
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            problems.append(f"key {kid!r} is not valid base64url")
            continue
        if len(raw) != 32:
            problems.append(f"key {kid!r} is {len(raw)} bytes; AES-256-GCM needs exactly 32")
            continue
        seen.add(kid)
        ring.append((kid, raw))
    return ring, problems


# Inbound rate-limit rules (dashtam/ratelimit; docs/ratelimits.md).
# name -> routes: URL names; "x-*" is a prefix, "*" is every route under /api/.
#         key: ip | user | user_or_ip | session | body:<field>.
#         rate: django-ratelimit's notation (20/m, 5/15m, 1000/h); "off" disables the rule.
# Every rule is overridable by env var: RATE_LIMIT_<NAME> is its rate (RATE_LIMIT_LOGIN=30/m),
# RATE_LIMIT_<NAME>_KEY its key and RATE_LIMIT_<NAME>_ROUTES its comma-separated routes.
# A request counts against every rule that matches it and is refused when any is spent.
RATE_LIMIT_KEYS = ("ip", "user", "user_or_ip", "session")
DEFAULT_RATE_RULES: dict[str, dict] = {
    # The per-account budget is the lockout's: an over-limit login whose account is
    # locked is answered ACCOUNT_LOCKED, never RATE_LIMITED (lockout_first).
    # The admin's login page (admin:login) is a login too: one budget per IP for both.
    "login": {"routes": ["auth-login", "admin:login"], "key": "ip", "rate": "20/m", "lockout_first": True},
    "register": {"routes": ["auth-register"], "key": "ip", "rate": "10/h"},
    "password_reset_ip": {"routes": ["auth-request-password-reset"], "key": "ip", "rate": "5/h"},
    "password_reset_email": {
        "routes": ["auth-request-password-reset"],
        "key": "body:email",
        "rate": "3/h",
    },
    "resend_verification": {
        "routes": ["auth-resend-verification"],
        "key": "body:email",
        "rate": "3/h",
    },
    # Beside the per-address budget: one client must not mail many addresses either.
    "resend_verification_ip": {"routes": ["auth-resend-verification"], "key": "ip", "rate": "10/h"},
    "refresh": {"routes": ["auth-refresh"], "key": "session", "rate": "60/m"},
    "sessions": {"routes": ["sessions-*", "auth-logout"], "key": "user", "rate": "30/m"},
    "providers": {
        "routes": ["provider-types", "providers-*", "accounts-*"],
        "key": "user",
        "rate": "100/m",
    },
    "oauth_callback": {"routes": ["providers-oauth-callback"], "key": "ip", "rate": "20/m"},
    # Fair use of a provider's shared outbound budget (issue 13 §6): a user's forced token
    # refreshes and syncs, per user (the scheduled refresh keeps its own reserved share).
    "provider_refresh": {"routes": ["providers-token-refresh"], "key": "user", "rate": "10/h"},
    "provider_sync": {"routes": ["providers-sync"], "key": "user", "rate": "10/h"},
    # --- Emails to addresses that have not proven themselves (email change, registration) ---
    # An email change is a PATCH of auth/me carrying "email": "methods" and "if_body" narrow
    # these rules to it (a GET, or a change of names, is not counted). Per user, so one account
    # cannot mail the world, and per target address, so many accounts cannot flood one inbox.
    "email_change": {"routes": ["auth-me"], "key": "user", "rate": "3/h",
                     "methods": ["PATCH", "PUT"], "if_body": "email"},
    "email_change_daily": {"routes": ["auth-me"], "key": "user", "rate": "10/d",
                           "methods": ["PATCH", "PUT"], "if_body": "email"},
    "email_change_address": {"routes": ["auth-me"], "key": "body:email", "rate": "3/h",
                             "methods": ["PATCH", "PUT"]},
    "email_change_address_daily": {"routes": ["auth-me"], "key": "body:email", "rate": "10/d",
                                   "methods": ["PATCH", "PUT"]},
    # Registration mails the address it is given (a link, or "someone tried to register"):
    # beside the per-IP rule above, a budget per address that no number of IPs can multiply.
    "register_email": {"routes": ["auth-register"], "key": "body:email", "rate": "5/h"},
    # --- Magic links (issue 16): each request mails the address; the token is 256-bit ---
    "magic_link_ip": {"routes": ["auth-magic-link"], "key": "ip", "rate": "5/m"},
    "magic_link_email": {"routes": ["auth-magic-link"], "key": "body:email", "rate": "3/15m"},
    "magic_link_verify": {"routes": ["auth-magic-link-verify"], "key": "ip", "rate": "20/m"},
    # identity: the lockout email's "unlock and sign in" link (256-bit tokens; this only caps noise).
    "unlock": {"routes": ["auth-unlock"], "key": "ip", "rate": "10/m"},
    # Second factors (accounts/mfa): the code step per client IP and per mfa_token (which also
    # dies after MFA_TOKEN_MAX_FAILURES wrong codes), and enrolment/recovery-code changes per user.
    "mfa_login_ip": {"routes": ["auth-login-mfa"], "key": "ip", "rate": "20/m"},
    "mfa_login_token": {"routes": ["auth-login-mfa"], "key": "body:mfa_token", "rate": "10/m"},
    "mfa_manage": {"routes": ["auth-mfa-totp", "auth-mfa-totp-confirm", "auth-mfa-recovery-codes"],
                   "key": "user", "rate": "10/m"},
    # Passkeys (accounts/passkeys): asking for options, and verifying a registration or a sign-in, per IP.
    "passkey_options": {"routes": ["auth-passkeys-registration-options", "auth-passkeys-authentication-options"],
                        "key": "ip", "rate": "10/m"},
    "passkey_verify": {"routes": ["auth-passkeys-registration", "auth-passkeys-authentication"],
                       "key": "ip", "rate": "20/m"},
    "api": {"routes": ["*"], "key": "user_or_ip", "rate": "1000/m"},
}
RATE_OFF = ("off", "none", "disabled")


def rate_rule_env_var(name: str) -> str:
    return f"RATE_LIMIT_{name.upper()}"


def parse_rate_rules(env) -> dict[str, dict]:
    """The rule table, each rule's rate, key and routes read from its env vars.

    RATE_LIMIT_<NAME>, RATE_LIMIT_<NAME>_KEY and RATE_LIMIT_<NAME>_ROUTES; the
    table's values are the defaults. Values are not validated here:
    ``dashtam.ratelimit.checks`` reports every bad one at start-up, naming its variable.
    """
    rules = {}
    for name, rule in DEFAULT_RATE_RULES.items():
        var = rate_rule_env_var(name)
        rate = env.str(var, default=rule["rate"]).strip()
        key = env.str(f"{var}_KEY", default=rule["key"]).strip()
        routes = [r.strip() for r in env.str(f"{var}_ROUTES", default=",".join(rule["routes"])).split(",")
                  if r.strip()]
        rules[name] = dict(rule, routes=routes, rate=rate, key=key)
    return rules
