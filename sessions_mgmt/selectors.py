"""Reads for the sessions API and admin."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from sessions_mgmt.models import Session


def sessions_active_for_user(*, user) -> QuerySet[Session]:
    """The user's live sessions, newest activity first (one query, no joins needed)."""
    return (
        Session.objects.active(now=timezone.now())
        .filter(user_id=user.pk)
        .order_by("-last_used_at", "-created_at")
    )


def session_get_for_user(*, user, session_id) -> Session | None:
    """One of the user's sessions, or None (another user's session is not found, never forbidden)."""
    return Session.objects.filter(pk=session_id, user_id=user.pk).first()


def session_client_known(*, user_id, ip: str | None, user_agent: str) -> bool:
    """Whether a login session of the user was ever started from this client (the same IP
    address and User-Agent), among the sessions still kept (SESSION_RETENTION_DAYS).

    The lockout asks, to let a known client's correct password past an IP lock. One
    indexed query on the user's sessions.
    """
    if not ip:
        return False
    return Session.objects.filter(user_id=user_id, ip=ip, user_agent=user_agent).exists()
