"""WebAuthn challenges, kept server-side in the cache: short-lived, single-use, bound.

A challenge is 32 random bytes handed to the browser inside the options. The
cache entry under the challenge's SHA-256 says what it may be used for: a
registration by one user, a sign-in (optionally for one user, when the options
named an email), or the second-factor step of one mfa_token. The browser returns
the challenge inside clientDataJSON; ``challenge_take`` reads it from there (with
py_webauthn's parser), deletes the entry and returns it. The delete is the single
use: of two concurrent requests with one challenge, only one finds it deleted by
itself (Redis DEL and the local-memory cache both report whether the key existed).
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.parse_client_data_json import parse_client_data_json

from dashtam.errors import DomainError

logger = logging.getLogger("accounts.passkeys")

REGISTER = "register"
LOGIN = "login"
MFA = "mfa"


def _key(challenge: bytes) -> str:
    return "passkeys:challenge:" + hashlib.sha256(challenge).hexdigest()


def _unavailable(exc: Exception) -> DomainError:
    logger.warning("passkey challenge store unavailable: %s", type(exc).__name__)
    return DomainError("SERVICE_UNAVAILABLE", "Passkeys are unavailable right now. Try again shortly.")


def challenge_issue(*, purpose: str, user_id=None, mfa_token_hash: str = "") -> bytes:
    """A fresh challenge stored for WEBAUTHN_CHALLENGE_SECONDS, bound to ``user_id`` / the mfa_token."""
    challenge = secrets.token_bytes(32)
    entry = {"purpose": purpose, "user_id": str(user_id) if user_id else "", "mfa": mfa_token_hash}
    try:
        cache.set(_key(challenge), entry, timeout=settings.WEBAUTHN_CHALLENGE_SECONDS)
    except Exception as exc:  # noqa: BLE001 - a cache outage is a 503, not a 500
        raise _unavailable(exc) from None
    return challenge


def challenge_from_credential(credential: dict) -> bytes | None:
    """The challenge the browser signed, read from the credential's clientDataJSON (None if unreadable)."""
    try:
        raw = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return parse_client_data_json(raw).challenge
    except Exception:  # noqa: BLE001 - any malformed input is simply "no challenge"
        return None


def challenge_take(*, challenge: bytes | None) -> dict | None:
    """Spend ``challenge``: its entry, or None when unknown, expired or already used."""
    if not challenge or len(challenge) > 1024:
        return None
    key = _key(challenge)
    try:
        entry = cache.get(key)
        if entry is None or not cache.delete(key):
            return None
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from None
    return entry
