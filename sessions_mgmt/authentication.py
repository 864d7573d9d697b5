"""DRF authentication: a simplejwt access token whose session is still alive.

On top of simplejwt's signature and expiry checks, every request checks, with
one cache round trip (``sessions_mgmt.revocation``), that the token's session
is neither revoked nor past its maximum age, that its token version is not
below the user's or the global minimum, and that the user is active. When the
cache cannot answer, the database does: revocation never fails open.
"""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings

from dashtam import context
from dashtam.api.exceptions import ProblemError
from dashtam.ratelimit.enforcement import early_count
from sessions_mgmt import revocation, tokens
from sessions_mgmt.models import (
    EXPIRED,
    INACTIVE,
    REVOKED,
    Session,
    global_min_version,
    refusal,
    version_floor,
)

BEARER = {"WWW-Authenticate": 'Bearer realm="api"'}


def _invalid(detail: str = "The access token is invalid or expired.") -> ProblemError:
    return ProblemError("TOKEN_INVALID", detail, headers=BEARER)


def _revoked() -> ProblemError:
    return ProblemError("SESSION_REVOKED", "This session has ended. Sign in again.", headers=BEARER)


MALFORMED_HEADER = 'The Authorization header must be "Bearer" followed by one access token.'


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is no header.

    Anything else that is present (another scheme, no token, two tokens, characters
    outside printable ASCII) is refused with 401 TOKEN_INVALID and one plain
    sentence, never simplejwt's error dict. The scheme is case-insensitive (RFC 9110).
    """
    if header is None or not header.strip():
        return None
    parts = header.split()
    if (len(parts) != 2 or parts[0].lower() != "bearer"
            or not (parts[1].isascii() and parts[1].isprintable())):  # no space left after split()
        raise _invalid(MALFORMED_HEADER)
    return parts[1]


class SessionJWTAuthentication(JWTAuthentication):
    def authenticate(self, request):
        raw = bearer_token(request.META.get(api_settings.AUTH_HEADER_NAME))
        if raw is None:
            return None
        try:
            token = tokens.decode_access(raw)
        except tokens.InvalidTokenError:
            raise _invalid() from None
        user = self.check_session(token, request=request)
        context.bind_actor(user, token.get("sid"))
        return user, token

    def check_session(self, token, *, request=None):
        """The user behind a live session, or ProblemError (TOKEN_INVALID / SESSION_REVOKED).

        With the DRF ``request``, its rate limits are counted in the same cache round
        trip as the revocation check, when no rule needs more than the token's user
        (``dashtam.ratelimit.enforcement.early_count``).
        """
        sid = str(token["sid"])
        uid = str(token[api_settings.USER_ID_CLAIM])
        version = int(token["ver"])
        early = None
        if request is not None:
            early = early_count(django_request=request._request, user_id=uid,
                                view=(getattr(request, "parser_context", None) or {}).get("view"))
        found = revocation.lookup(session_id=sid, user_id=uid, count=early.items if early else None)
        if early is None or found.decisions is None:
            return self._verdict(sid=sid, uid=uid, version=version, found=found)
        early.counted_with(found.decisions)
        try:
            return self._verdict(sid=sid, uid=uid, version=version, found=found)
        except ProblemError:
            # Counted before the answer was known: a revoked or refused token must not spend
            # its user's budget (whoever holds a revoked token could otherwise exhaust it).
            early.refund()
            raise

    def _verdict(self, *, sid: str, uid: str, version: int, found):
        state, user, global_version = found.session, found.user, found.global_version
        fill: dict = {}
        if state is None:
            row = Session.objects.filter(pk=sid).values(
                "user_id", "revoked_at", "created_at", "expires_at", "last_used_at").first()
            if row is None:
                raise _invalid()
            state = revocation.state_from_row(row)
            fill["session"] = state
        if user is None:
            user = get_user_model().objects.filter(pk=uid).first()
            if user is None:
                raise _invalid()
            fill["user"] = user
        if global_version is None:
            global_version = global_min_version()
            fill["global_version"] = global_version
        if fill and found.cache_ok:
            revocation.fill(lookup=found, session_id=sid, user_id=uid, **fill)

        if state.user_id != uid:
            raise _invalid()
        now = time.time()
        why = refusal(revoked=state.revoked, expires_at=state.expires_at, now=now, user_active=user.is_active,
                      version=version, user_min=user.min_token_version, global_min=global_version)
        if why == REVOKED:
            raise _revoked()
        if why == EXPIRED:
            raise _invalid("This session has expired. Sign in again.")
        if why == INACTIVE:
            raise _invalid("This account is inactive.")
        if why is not None:  # a stale token version
            if "user" in fill and "global_version" in fill:
                raise _revoked()
            # Refusing on a cached minimum: confirm with the database first (refusals are
            # rare, and a minimum never goes down, so a cached one can only be stale high
            # after a rolled-back bump).
            user, global_version = self._versions_from_db(uid)
            if user is None:
                raise _invalid()
            if found.cache_ok:
                # Read from the database just now: the freshest answer, written over the stale one
                # (unless a change landed meanwhile: the fill is a compare-and-set on the lookup).
                revocation.fill(lookup=found, session_id=sid, user_id=uid,
                                user=user, global_version=global_version)
            if not user.is_active:
                raise _invalid("This account is inactive.")
            if version < version_floor(user_min=user.min_token_version, global_min=global_version):
                raise _revoked()
        if now - state.last_used_at >= _resolution():
            self._touch(sid, state, found)
        return user

    @staticmethod
    def _versions_from_db(uid):
        return get_user_model().objects.filter(pk=uid).first(), global_min_version()

    @staticmethod
    def _touch(sid, state, found) -> None:
        from sessions_mgmt.services import session_touch

        session_touch(session_id=sid)
        if found.cache_ok:
            revocation.session_touched(session_id=sid)


def _resolution() -> int:
    from django.conf import settings

    return settings.SESSION_LAST_USED_RESOLUTION
