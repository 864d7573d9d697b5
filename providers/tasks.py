"""Celery tasks for providers. Thin: they take ids and call services.

Every task is idempotent and safe to overlap: the refresh takes a row lock with
skip_locked and re-checks whether the work is still due; syncs upsert.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from providers import refresh_queue, services
from providers.clients.base import reserved_budget

logger = logging.getLogger("dashtam.providers")

# Due connections per refresh task enqueued by the beat fan-out. Celery's per-message
# work (receive, ack, bookkeeping) is paid once per task, not once per connection;
# every connection is still locked and refreshed on its own (see services.token_refresh).
DEFAULT_TASK_SIZE = 20


def _task_size() -> int:
    return max(1, int(getattr(settings, "PROVIDER_REFRESH_TASK_SIZE", DEFAULT_TASK_SIZE)))


def _retry_countdown(result, retries: int) -> float:
    """Exponential backoff with jitter, or the provider's Retry-After when longer."""
    backoff = min(600.0, settings.PROVIDER_REFRESH_RETRY_SECONDS * (2 ** retries))
    return max(result.retry_after or 0.0, backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter


@shared_task(bind=True, max_retries=5, acks_late=True)
def refresh_connection_token(self, connection_id: str, force: bool = False) -> str:
    """Refresh one connection's token (exactly once; see services.token_refresh).

    Transient failures are retried with exponential backoff and jitter (the
    provider's Retry-After when it gave one) until the connection is in error.
    Background work: it spends the reserved share of the provider's outbound budget.
    """
    with reserved_budget():
        result = services.token_refresh(connection_id=connection_id, force=force)
    if result.retryable and not self.request.is_eager and self.request.retries < self.max_retries:
        raise self.retry(countdown=_retry_countdown(result, self.request.retries))
    refresh_queue.release(connection_id)
    return result.status


@shared_task(bind=True, acks_late=True)
def refresh_connection_tokens(self, connection_ids: list[str]) -> dict[str, int]:
    """Refresh a batch of due connections (the beat fan-out), one after the other.

    Each connection is refreshed exactly as by ``refresh_connection_token``: its own
    row lock (skip_locked) and transaction, so a connection that another worker is
    refreshing is skipped and a redelivered batch refreshes nothing twice. A
    transient failure is handed to ``refresh_connection_token`` as its first retry
    (same backoff and limit); an unexpected error in one connection does not stop
    the others (its queue claim is kept, so it is enqueued again when the claim
    expires). Background work: it spends the reserved share of the provider's outbound
    budget (PROVIDER_REFRESH_RESERVED_SHARE), which users' forced refreshes and syncs cannot
    take. Returns how many connections ended in each status.
    """
    counts: dict[str, int] = {}
    done: list[str] = []
    try:
        for connection_id in connection_ids:
            try:
                with reserved_budget():
                    result = services.token_refresh(connection_id=connection_id)
            except Exception:  # noqa: BLE001 - one broken connection must not strand the batch
                logger.exception("provider token refresh crashed", extra={"connection": connection_id})
                counts["crashed"] = counts.get("crashed", 0) + 1
                continue
            counts[result.status] = counts.get(result.status, 0) + 1
            if result.retryable and not self.request.is_eager and refresh_connection_token.max_retries > 0:
                refresh_connection_token.apply_async(
                    (connection_id,), countdown=_retry_countdown(result, 0), retries=1)
            else:
                done.append(connection_id)
    finally:
        refresh_queue.release(*done)
    return counts


@shared_task(acks_late=True)
def refresh_due_tokens() -> int:
    """Beat, every minute: refresh tasks for the connections whose token expires within
    PROVIDER_REFRESH_AHEAD (or is below its minimum version), among the
    PROVIDER_REFRESH_BATCH most urgent, PROVIDER_REFRESH_TASK_SIZE connections per
    task. A connection whose task is still queued or running is not enqueued again
    (``providers.refresh_queue``: a claim released when its refresh ends), so a backlog
    longer than one tick is not multiplied by every tick. Returns how many connections were enqueued."""
    enqueued, tasks = refresh_queue.due_enqueue(publish=refresh_connection_tokens.delay, size=_task_size())
    if enqueued:
        logger.info("provider refreshes enqueued", extra={"count": enqueued, "tasks": tasks})
    return enqueued


@shared_task(acks_late=True, autoretry_for=(), max_retries=0)
def sync_connection(connection_id: str, job_id: str | None = None) -> str:
    """Sync one connection's accounts and transactions (idempotent upserts); ends job ``job_id``."""
    from providers.exceptions import ProviderUnavailable

    try:
        return services.connection_sync(connection_id=connection_id, job_id=job_id).status
    except ProviderUnavailable:
        return "unavailable"


@shared_task(acks_late=True)
def sync_due_connections() -> int:
    """Beat: a sync job for each active connection not synced for PROVIDER_SYNC_MINUTES
    (none for a connection that already has one queued)."""
    return services.connections_sync_due_enqueue()


@shared_task(acks_late=True)
def warn_reauth_due() -> int:
    """Beat: email users PROVIDER_REAUTH_WARNING_HOURS before a refresh token dies (once)."""
    return services.tokens_reauth_warn()


@shared_task(acks_late=True)
def cleanup_oauth_states() -> int:
    """Beat, daily: forget OAuth states that expired more than a day ago."""
    return services.oauth_states_cleanup()
