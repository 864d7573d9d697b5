"""Access and refresh tokens: simplejwt's signing, our claims.

Both kinds carry ``sid`` (the login session) and ``ver`` (the token version,
compared with the user's and the global minimum). A refresh token's ``jti`` is
the session's ``refresh_jti`` while it is the newest of its family.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import aware_utcnow

ACCESS = "access"
# Longer is not a token of ours (ours are about 350 characters); refused before any parsing.
MAX_TOKEN_LENGTH = 4096
REFRESH = "refresh"


class InvalidTokenError(Exception):
    """The token is malformed, badly signed, expired or of the wrong type."""


def new_jti() -> str:
    return uuid.uuid4().hex


def _encode(*, token_type: str, user_id, session_id, version: int, jti: str,
            issued_at: datetime, expires_at: datetime, amr: list[str] | None = None) -> str:
    payload = {
        api_settings.TOKEN_TYPE_CLAIM: token_type,
        "exp": int(expires_at.timestamp()),
        "iat": int(issued_at.timestamp()),
        api_settings.JTI_CLAIM: jti,
        api_settings.USER_ID_CLAIM: str(user_id),
        "sid": str(session_id),
        "ver": int(version),
    }
    if amr:
        # How the session was signed in (RFC 8176's claim, with our method names), kept across refreshes.
        payload["amr"] = [str(m) for m in amr]
    return token_backend.encode(payload)


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    refresh_jti: str
    refresh_expires_at: datetime
    expires_in: int


def issue_pair(*, user_id, session_id, version: int, session_expires_at: datetime,
               refresh_jti: str | None = None, now: datetime | None = None,
               amr: list[str] | None = None) -> TokenPair:
    """A new access and refresh token for one session, never outliving the session."""
    now = now or timezone.now()
    access_exp = min(now + timedelta(seconds=settings.ACCESS_TOKEN_LIFETIME), session_expires_at)
    refresh_exp = min(now + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME), session_expires_at)
    jti = refresh_jti or new_jti()
    common = {"user_id": user_id, "session_id": session_id, "version": version, "issued_at": now, "amr": amr}
    access = _encode(token_type=ACCESS, jti=new_jti(), expires_at=access_exp, **common)
    refresh = _encode(token_type=REFRESH, jti=jti, expires_at=refresh_exp, **common)
    return TokenPair(
        access=access, refresh=refresh, refresh_jti=jti, refresh_expires_at=refresh_exp,
        expires_in=max(0, int((access_exp - now).total_seconds())),
    )


@lru_cache(maxsize=1024)
def _verified_refresh_payload(raw: str) -> dict:
    """A refresh token's payload once its signature, type and claims check out (cached by
    exact text, like access tokens: the refresh view and its rate limit both read it)."""
    try:
        payload = token_backend.decode(raw, verify=True)
    except (TokenBackendError, TokenError) as exc:
        raise InvalidTokenError(str(exc)) from exc
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != REFRESH:
        raise InvalidTokenError("wrong token type")
    for claim in ("sid", "ver", "exp", api_settings.JTI_CLAIM, api_settings.USER_ID_CLAIM):
        if claim not in payload:
            raise InvalidTokenError(f"missing claim {claim}")
    try:
        payload["sid"] = str(uuid.UUID(str(payload["sid"])))
        uuid.UUID(str(payload[api_settings.USER_ID_CLAIM]))
        payload["ver"] = int(payload["ver"])
        int(payload["exp"])
    except (TypeError, ValueError) as exc:
        raise InvalidTokenError("bad claim") from exc
    return payload


def decode_refresh(raw: str) -> dict:
    """The verified payload of a refresh token of ours, or InvalidTokenError.

    Verifying a token says nothing about whether it is still the newest of its
    session: the refresh service decides that against the session row.
    """
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError("missing or too long")
    payload = dict(_verified_refresh_payload(raw))
    # Checked on every use, remembered or not (PyJWT's rule: expired at exp - leeway).
    if int(payload["exp"]) <= aware_utcnow().timestamp() - token_backend.get_leeway().total_seconds():
        raise InvalidTokenError("expired")
    return payload


def refresh_session_id(data) -> str | None:
    """The session id of the refresh token in a request body (``{"refresh": ...}``), when its
    signature is ours; else None. The rate limiter's ``session`` key (registered in
    ``SessionsMgmtConfig.ready``): it picks a bucket, and the refresh view still does every check.
    """
    raw = data.get("refresh") if hasattr(data, "get") else None
    if not isinstance(raw, str) or not raw:
        return None
    try:
        payload = decode_refresh(raw)  # remembered: the refresh view reads it again for free
    except InvalidTokenError:
        return None
    return payload["sid"]


class _VerifiedAccessToken(AccessToken):
    """An access token this process has verified before: only its expiry is checked again."""

    def __init__(self, raw: str, payload: dict):  # noqa: D107 - deliberately skips decoding
        self.token = raw
        self.current_time = aware_utcnow()
        self.payload = payload
        self.check_exp()


@lru_cache(maxsize=4096)
def _verified_payload(raw: str) -> dict:
    """The payload of an access token whose signature, type and claims all check out.

    Cached per process by the exact token text: the same bytes verify the same way
    every time, except for the expiry, which ``decode_access`` checks on every use.
    A token that fails raises and is not cached. A client sends one access token
    many times until it expires, so this saves the signature check (about 0.1 ms)
    on nearly every request. Revocation is checked separately, on every request.
    """
    try:
        token = AccessToken(raw)
    except TokenError as exc:
        raise InvalidTokenError(str(exc)) from exc
    if "sid" not in token or "ver" not in token or api_settings.USER_ID_CLAIM not in token:
        raise InvalidTokenError("missing claims")
    try:
        uuid.UUID(str(token["sid"]))
        uuid.UUID(str(token[api_settings.USER_ID_CLAIM]))
        int(token["ver"])
    except (TypeError, ValueError) as exc:
        raise InvalidTokenError("bad claim") from exc
    return token.payload


def decode_access(raw: str) -> AccessToken:
    """A verified access token of ours (simplejwt's class, so ``request.auth["sid"]`` works)."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN_LENGTH:
        raise InvalidTokenError("missing or too long")
    try:
        return _VerifiedAccessToken(raw, dict(_verified_payload(raw)))
    except TokenError as exc:  # expired since it was first verified
        raise InvalidTokenError(str(exc)) from exc


def forget_verified_tokens(**kwargs) -> None:
    """Drop the verified-token cache (the signing settings changed)."""
    setting = kwargs.get("setting")
    if setting is None or setting in ("SIMPLE_JWT", "JWT_SIGNING_KEY", "SECRET_KEY", "JWT_ISSUER", "JWT_AUDIENCE"):
        _verified_payload.cache_clear()
        _verified_refresh_payload.cache_clear()


setting_changed.connect(forget_verified_tokens)
