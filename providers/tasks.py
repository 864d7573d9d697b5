"""Celery tasks for providers. Thin: they take ids and call services.

Every task is idempotent and safe to overlap: the refresh takes a row lock with
skip_locked and re-checks whether the work is still due; syncs upsert.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from providers import services

logger = logging.getLogger("dashtam.providers")

# A connection waiting in the queue for its refresh is "claimed" in the cache, so a
# backlog longer than one beat interval is not enqueued again on every tick.
QUEUED_KEY = "providers:refresh-queued:{}"
CACHE_ERRORS = (ConnectionInterrupted, RedisError)


def _claim(connection_id: str) -> bool:
    """True when the connection was not already queued. Fails open (a duplicate task
    is safe: the refresh takes a row lock and re-checks that it is due)."""
    try:
        return bool(cache.add(QUEUED_KEY.format(connection_id), 1, timeout=settings.PROVIDER_REFRESH_AHEAD))
    except CACHE_ERRORS:
        return True


def _release(connection_id: str) -> None:
    try:
        cache.delete(QUEUED_KEY.format(connection_id))
    except CACHE_ERRORS:
        pass


@shared_task(bind=True, max_retries=5, acks_late=True)
def refresh_connection_token(self, connection_id: str, force: bool = False) -> str:
    """Refresh one connection's token (exactly once; see services.token_refresh).

    Transient failures are retried with exponential backoff and jitter (the
    provider's Retry-After when it gave one) until the connection is in error.
    """
    result = services.token_refresh(connection_id=connection_id, force=force)
    if result.retryable and not self.request.is_eager and self.request.retries < self.max_retries:
        backoff = min(600.0, settings.PROVIDER_REFRESH_RETRY_SECONDS * (2 ** self.request.retries))
        countdown = max(result.retry_after or 0.0, backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter
        raise self.retry(countdown=countdown)
    _release(connection_id)
    return result.status


@shared_task(acks_late=True)
def refresh_due_tokens() -> int:
    """Beat, every minute: one refresh task per connection whose token expires within
    PROVIDER_REFRESH_AHEAD (or is below its minimum version), among the
    PROVIDER_REFRESH_BATCH most urgent. A connection whose task is still queued or
    running is not enqueued again (cache claim, released when its task ends), so a
    backlog longer than one tick is not multiplied by every tick."""
    ids = [cid for cid in services.tokens_due_for_refresh(limit=settings.PROVIDER_REFRESH_BATCH) if _claim(cid)]
    for connection_id in ids:
        refresh_connection_token.delay(connection_id)
    if ids:
        logger.info("provider refreshes enqueued", extra={"count": len(ids)})
    return len(ids)


@shared_task(acks_late=True, autoretry_for=(), max_retries=0)
def sync_connection(connection_id: str) -> str:
    """Sync one connection's accounts and transactions (idempotent upserts)."""
    from providers.exceptions import ProviderUnavailable

    try:
        return services.connection_sync(connection_id=connection_id).status
    except ProviderUnavailable:
        return "unavailable"


@shared_task(acks_late=True)
def sync_due_connections() -> int:
    """Beat: a sync task for each active connection not synced for PROVIDER_SYNC_MINUTES."""
    ids = services.connections_due_for_sync()
    for connection_id in ids:
        sync_connection.delay(connection_id)
    return len(ids)


@shared_task(acks_late=True)
def warn_reauth_due() -> int:
    """Beat: email users PROVIDER_REAUTH_WARNING_HOURS before a refresh token dies (once)."""
    return services.tokens_reauth_warn()


@shared_task(acks_late=True)
def cleanup_oauth_states() -> int:
    """Beat, daily: forget OAuth states that expired more than a day ago."""
    return services.oauth_states_cleanup()
