"""The rate-limit rule table and its env-var overrides (docs/ratelimits.md).

Read by the settings module (``RATE_LIMIT_RULES = parse_rate_rules(env)``), so nothing
here imports Django. ``dashtam.ratelimit.rules`` compiles and matches the table the
settings hold; ``dashtam.ratelimit.checks`` reports every bad value at start-up.
"""

from __future__ import annotations

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
