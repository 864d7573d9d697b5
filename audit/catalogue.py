"""The one catalogue of audit action codes.

Every row in the audit trail carries one of these dotted codes. ``record()``
refuses any other code with ``ValueError``, so a typo fails loudly in tests
instead of writing an event nobody will ever search for.

To add a code: append it to the right section with a one-line meaning (what
happened, from the point of view of a staff member reading the trail). The
outcome (success, failure or denied) is stored beside the code, so one code may
cover several outcomes where the meaning is the same.
"""

from __future__ import annotations

CATALOGUE: dict[str, str] = {
    # accounts: registration and email verification
    "auth.register.requested": "Someone asked to register a new account for an unused address.",
    "auth.register.duplicate": "Someone tried to register an address that already has an account "
                               "(the owner gets an email instead).",
    "auth.email.verified": "A user verified their email address with the emailed token.",
    "auth.email.verification_failed": "An email verification token was invalid, expired or already used.",
    "account.verification_resent": "A verification email was sent again on request.",
    # accounts: login and lockout
    "auth.login.succeeded": "A user logged in with a correct password (a session was started).",
    "auth.login.failed": "A login failed: unknown address or wrong password.",
    "auth.login.unverified": "A correct password was given for an account whose email is not verified.",
    "auth.lockout": "Too many failed logins: the account or the client IP is locked for a while.",
    "auth.lockout.cleared": "A lockout was lifted (by staff or by a successful password reset).",
    "auth.magic_link.requested": "A sign-in link was emailed on request (the requesting IP is in extra).",
    "auth.magic_link.used": "A user signed in with an emailed link (requesting IP in extra, using IP on the row).",
    "auth.magic_link.failed": "A sign-in link was invalid, expired, already used, or the account was locked.",
    "auth.lockout.unlocked": "The owner used the lockout email's single-use unlock link: the lock ended "
                             "and they were signed in.",
    "auth.lockout.unlock_failed": "An unlock link was invalid, expired, replaced or already used.",
    "auth.logout": "A user logged out: the current session and its tokens ended.",
    # accounts: passwords, email change, profile, deactivation
    "auth.password.changed": "A user changed their password (every other session ended).",
    "auth.password_check": "A password re-check for a sensitive action (such as deactivation) failed.",
    "auth.password.reset_requested": "A password reset email was requested.",
    "auth.password.reset": "A password was reset with an emailed token (every session ended).",
    "auth.email_change.requested": "A user asked to change their email address (confirmation sent).",
    "auth.email_change.confirmed": "A user confirmed a new email address.",
    "auth.profile.updated": "A user changed their profile (the changed field names are in extra).",
    "auth.account.deactivated": "An account was deactivated: sessions ended, provider connections revoked.",
    # accounts: second factors (accounts/mfa)
    "auth.mfa.challenge": "A correct first factor on an account with a second factor: an mfa_token was issued.",
    "auth.mfa.failed": "A second-factor check failed (wrong, malformed or replayed code, locked account, "
                       "or an mfa_token from another client); the step and reason are in extra.",
    "auth.mfa.totp.enrolment_started": "A user started enrolling an authenticator app (pending until confirmed).",
    "auth.mfa.totp.enabled": "A user turned two-step verification on (new recovery codes issued).",
    "auth.mfa.totp.disabled": "A user turned two-step verification off (authenticator and codes removed).",
    "auth.mfa.recovery_code.used": "A recovery code was used (the number left is in extra).",
    "auth.mfa.recovery_codes.regenerated": "A user replaced their recovery codes (the old ones stopped working).",
    "auth.mfa.reset": "Staff removed a user's second factors (the user was emailed).",
    "auth.mfa.keys.rotated": "Stored TOTP seeds were re-encrypted under the newest key.",
    # accounts: passkeys (accounts/passkeys)
    "auth.passkey.registered": "A user registered a passkey (its id, name and AAGUID are in extra).",
    "auth.passkey.renamed": "A user renamed one of their passkeys.",
    "auth.passkey.deleted": "A user deleted one of their passkeys (the number left is in extra).",
    "auth.passkey.failed": "A passkey registration or sign-in was refused (expired or used challenge, unknown "
                           "or another user's credential, wrong origin or RP ID, bad signature, locked account); "
                           "the step and reason are in extra.",
    "auth.passkey.counter_regressed": "A passkey's signature counter did not move forward: possibly a cloned "
                                      "authenticator. The sign-in was refused.",
    # sessions_mgmt
    "session.created": "A login session was started and its first token pair issued.",
    "session.refreshed": "A refresh token was rotated for a new token pair.",
    "session.revoked": "One login session was ended (logout, user or staff action).",
    "sessions.revoked": "Several sessions of one user were ended at once (the count is in extra).",
    "session.new_device": "A login came from a device not seen before for this user (an email was sent).",
    "session.token_reuse_detected": "An already-rotated refresh token was presented again: "
                                    "the whole session was revoked.",
    "session.tokens_revoked": "Breach rotation: every token of a user (or of everyone) was invalidated.",
    # providers
    "provider.connection.created": "A user started connecting a brokerage provider (pending OAuth).",
    "provider.connection.authorization_started": "A new OAuth authorization began for a connection "
    "(connect or re-connect); its earlier unused states stopped working.",
    "provider.connection.connected": "The OAuth flow completed: the provider connection is active.",
    "provider.connection.updated": "A provider connection's details (such as its alias) changed.",
    "provider.connection.revoked": "A provider connection's tokens were revoked.",
    "provider.connection.deleted": "A provider connection was deleted by its owner.",
    "provider.oauth.failed": "An OAuth completion failed (bad, expired, replayed or another user's state, "
                             "denied consent or token exchange error).",
    "provider.token.refreshed": "A provider access token was refreshed.",
    "provider.token.refresh_failed": "A provider token refresh failed.",
    "provider.token.decrypt_failed": "A stored provider token could not be decrypted (key problem).",
    "provider.token.reauth_required": "The provider refused the refresh token: the user must reconnect.",
    "provider.sync.completed": "Accounts and transactions were synced from a provider.",
    "provider.sync.failed": "A provider sync failed.",
    "provider.sync.requested": "A user asked for a sync and a new sync job was queued.",
    "provider.keys.rotated": "Stored provider tokens were re-encrypted under the newest key.",
    "provider.token.rotation_requested": "Breach rotation: a connection's tokens must be replaced "
                                         "(refreshed, or else re-authorized); the reason is in extra.",
    "provider.token.reauth_warning": "The user was emailed that a provider's refresh token expires soon.",
    "provider.circuit.opened": "Calls to a provider failed repeatedly: its circuit breaker opened and "
                               "calls are refused for CIRCUIT_BREAKER_RESET_SECONDS.",
    # platform
    "ratelimit.exceeded": "A client went over a rate limit (one event per key and window).",
    "admin.action": "A staff member ran an action in the admin (the action and count are in extra).",
    "audit.purged": "The retention purge deleted audit events older than AUDIT_RETENTION_DAYS.",
    "audit.verified": "The audit hash chain was verified (the result is in extra).",
    "audit.tamper_detected": "An audit event no longer matched the hash taken when it was written "
                             "(found while sealing it into the chain); its id is in extra.",
    "audit.head_published": "The hash chain's head (head_seq, head_hash in extra) was published to the "
                            "log; keep it outside the database and check it with audit_verify --against.",
}


def is_known(action: str) -> bool:
    return action in CATALOGUE


def describe(action: str) -> str:
    """The one-line meaning of a code ("" when the code is unknown)."""
    return CATALOGUE.get(action, "")


def validate(action: str) -> str:
    """Return ``action`` when it is in the catalogue, else raise ValueError."""
    if action not in CATALOGUE:
        raise ValueError(f"Unknown audit action code {action!r}: add it to audit/catalogue.py")
    return action
