"""One-time email tokens: 32 random bytes, only their SHA-256 stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import AccountToken, User
from dashtam.errors import DomainError

Purpose = AccountToken.Purpose
TOKEN_MAX_LENGTH = 128


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lifetime(purpose: str) -> timedelta:
    if purpose == Purpose.RESET_PASSWORD:
        return timedelta(minutes=settings.PASSWORD_RESET_TOKEN_MINUTES)
    if purpose == Purpose.MAGIC_LINK:
        return timedelta(minutes=settings.MAGIC_LINK_TOKEN_MINUTES)
    if purpose == Purpose.UNLOCK:
        return timedelta(minutes=settings.UNLOCK_TOKEN_MINUTES)
    return timedelta(hours=settings.EMAIL_VERIFICATION_TOKEN_HOURS)


def account_token_issue(*, user: User, purpose: str, new_email: str = "", requested_ip: str | None = None) -> str:
    """Create a token and return its plaintext (sent by email, never stored).

    Every earlier unused token of the same purpose for this user stops working,
    so only the newest link in the user's mailbox is valid. Call inside the
    caller's transaction.
    """
    now = timezone.now()
    account_tokens_revoke(user=user, purposes=[purpose], now=now)
    token = secrets.token_urlsafe(32)
    AccountToken.objects.create(
        user=user, purpose=purpose, token_hash=token_hash(token), new_email=new_email,
        created_at=now, expires_at=now + lifetime(purpose), requested_ip=requested_ip or None,
    )
    return token


def account_tokens_revoke(*, user: User, purposes, now=None) -> int:
    """Invalidate every unused token of ``purposes`` for ``user``. Idempotent."""
    return AccountToken.objects.filter(
        user=user, purpose__in=list(purposes), used_at__isnull=True, revoked_at__isnull=True,
    ).update(revoked_at=now or timezone.now())


def account_token_take(*, token: str, purposes) -> AccountToken:
    """Find a valid token, row-locked with its user, and mark it used.

    Raises 400 INVALID_TOKEN when the token is unknown, expired, used or
    replaced. Run inside a transaction: a later error rolls the use back.
    """
    now = timezone.now()
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
        raise DomainError("INVALID_TOKEN", "The link is invalid or has expired.")
    row = (
        AccountToken.objects.select_for_update()
        .select_related("user")
        .filter(token_hash=token_hash(token), purpose__in=list(purposes))
        .first()
    )
    if row is None or not row.user.is_active:
        raise DomainError("INVALID_TOKEN", "The link is invalid or has expired.")
    if row.used_at is not None:
        raise DomainError("INVALID_TOKEN", "This link was already used.")
    if row.revoked_at is not None:
        raise DomainError("INVALID_TOKEN", "This link was replaced by a newer one.")
    if row.expires_at <= now:
        raise DomainError("INVALID_TOKEN", "This link has expired.")
    # Compare-and-swap: of two requests that both read the token unused, one wins,
    # whether or not the database honoured the row lock (SQLite does not).
    won = AccountToken.objects.filter(pk=row.pk, used_at__isnull=True, revoked_at__isnull=True).update(used_at=now)
    if won != 1:
        raise DomainError("INVALID_TOKEN", "This link was already used.")
    row.used_at = now
    return row
