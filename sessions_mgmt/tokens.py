"""Access and refresh tokens: simplejwt's signing, our claims.

Both kinds carry ``sid`` (the login session) and ``ver`` (the token version,
compared with the user's and the global minimum). A refresh token's ``jti`` is
the session's ``refresh_jti`` while it is the newest of its family.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.tokens import AccessToken

ACCESS = "access"
REFRESH = "refresh"


class InvalidTokenError(Exception):
    """The token is malformed, badly signed, expired or of the wrong type."""


def new_jti() -> str:
    return uuid.uuid4().hex


def _encode(*, token_type: str, user_id, session_id, version: int, jti: str,
            issued_at: datetime, expires_at: datetime) -> str:
    payload = {
        api_settings.TOKEN_TYPE_CLAIM: token_type,
        "exp": int(expires_at.timestamp()),
        "iat": int(issued_at.timestamp()),
        api_settings.JTI_CLAIM: jti,
        api_settings.USER_ID_CLAIM: str(user_id),
        "sid": str(session_id),
        "ver": int(version),
    }
    return token_backend.encode(payload)


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    refresh_jti: str
    refresh_expires_at: datetime
    expires_in: int


def issue_pair(*, user_id, session_id, version: int, session_expires_at: datetime,
               refresh_jti: str | None = None, now: datetime | None = None) -> TokenPair:
    """A new access and refresh token for one session, never outliving the session."""
    now = now or timezone.now()
    access_exp = min(now + timedelta(seconds=settings.ACCESS_TOKEN_LIFETIME), session_expires_at)
    refresh_exp = min(now + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME), session_expires_at)
    jti = refresh_jti or new_jti()
    common = {"user_id": user_id, "session_id": session_id, "version": version, "issued_at": now}
    access = _encode(token_type=ACCESS, jti=new_jti(), expires_at=access_exp, **common)
    refresh = _encode(token_type=REFRESH, jti=jti, expires_at=refresh_exp, **common)
    return TokenPair(
        access=access, refresh=refresh, refresh_jti=jti, refresh_expires_at=refresh_exp,
        expires_in=max(0, int((access_exp - now).total_seconds())),
    )


def decode_refresh(raw: str) -> dict:
    """The verified payload of a refresh token of ours, or InvalidTokenError."""
    if not isinstance(raw, str) or not raw:
        raise InvalidTokenError("missing")
    try:
        payload = token_backend.decode(raw, verify=True)
    except (TokenBackendError, TokenError) as exc:
        raise InvalidTokenError(str(exc)) from exc
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != REFRESH:
        raise InvalidTokenError("wrong token type")
    for claim in ("sid", "ver", api_settings.JTI_CLAIM, api_settings.USER_ID_CLAIM):
        if claim not in payload:
            raise InvalidTokenError(f"missing claim {claim}")
    try:
        payload["sid"] = str(uuid.UUID(str(payload["sid"])))
        uuid.UUID(str(payload[api_settings.USER_ID_CLAIM]))
        payload["ver"] = int(payload["ver"])
    except (TypeError, ValueError) as exc:
        raise InvalidTokenError("bad claim") from exc
    return payload


def decode_access(raw: str) -> AccessToken:
    """A verified access token of ours (simplejwt's class, so ``request.auth["sid"]`` works)."""
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
    return token
