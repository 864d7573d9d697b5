"""Periodic accounts work."""

from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(acks_late=True)
def cleanup_account_tokens() -> int:
    """Delete email tokens that can no longer be used. Idempotent and safe to overlap."""
    return services.account_tokens_cleanup()
