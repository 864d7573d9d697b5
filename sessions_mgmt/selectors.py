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
