"""Sync: fetching a connection's accounts and transactions and upserting them, and the
sync jobs that run it (a user's POST sync, the beat, the first sync after connecting).

Every state change is audited inside the same transaction. The provider is called with no
transaction open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import record
from dashtam import crypto
from dashtam.errors import DomainError, RetryLater
from providers import selectors
from providers.exceptions import InvalidGrant, ProviderError, ProviderRequestRejected, ProviderUnavailable
from providers.models import (
    ConnectionStatus,
    FinancialAccount,
    ProviderConnection,
    ProviderToken,
    Transaction,
)
from providers.services._common import _USABLE, _client, _lock_connection, _set_error, _user_key_share
from providers.services.keys import token_access_plaintext
from providers.services.refresh import _to_reauth, token_refresh


@dataclass(frozen=True)
class SyncResult:
    """The result of ``connection_sync``: ``status`` and how many accounts and transactions
    were written (created or updated)."""

    status: str  # synced | inactive | failed | reauth_required
    accounts: int = 0
    transactions: int = 0
    error_code: str = ""


def _fresh_access_token(connection: ProviderConnection) -> str:
    token = ProviderToken.objects.filter(connection=connection).first()
    if token is None:
        raise InvalidGrant("no token stored", code="no_token")
    if token.expires_at <= timezone.now() + timedelta(seconds=30):
        result = token_refresh(connection_id=connection.pk, wait=True)
        if result.status in ("reauth_required", "inactive"):
            raise InvalidGrant("re-authorization required", code="reauth_required")
        token.refresh_from_db()
    return token_access_plaintext(token=token)


def _fetch(connection: ProviderConnection, *, start: datetime, end: datetime) -> list:
    access = _fresh_access_token(connection)
    client = _client(connection)
    return [(a, client.list_transactions(access_token=access, account_hash=a.hash_value, start=start, end=end))
            for a in client.list_accounts(access_token=access)]


def connection_sync(*, connection_id, job_id=None) -> SyncResult:
    """Fetch accounts (with positions) and transactions, and upsert them.

    Provider calls run outside any transaction; the upserts then run in one
    (keyed by account hash and by transaction id per account), so running a sync
    twice changes nothing. Transactions since the last sync (less a day of
    overlap), or PROVIDER_SYNC_HISTORY_DAYS on the first sync. Audits
    ``provider.sync.completed`` or ``provider.sync.failed``. However it ends, the
    connection's sync job ``job_id`` is no longer queued (a newer job is left alone).
    """
    try:
        return _connection_sync(connection_id=connection_id)
    finally:
        done = ProviderConnection.objects.filter(pk=connection_id, sync_requested_at__isnull=False)
        if job_id:
            done = done.filter(sync_job_id=job_id)
        done.update(sync_requested_at=None)


def _connection_sync(*, connection_id) -> SyncResult:
    connection = ProviderConnection.objects.select_related("user").filter(pk=connection_id).first()
    if connection is None or connection.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR):
        return SyncResult("inactive")
    now = timezone.now()
    start = (connection.last_sync_at - timedelta(days=1)) if connection.last_sync_at else (
        now - timedelta(days=settings.PROVIDER_SYNC_HISTORY_DAYS))
    try:
        try:
            fetched = _fetch(connection, start=start, end=now)
        except ProviderRequestRejected as exc:
            if exc.status != 401:
                raise
            # The provider no longer accepts this access token (revoked early): refresh once, retry once.
            result = token_refresh(connection_id=connection.pk, force=True, wait=True)
            # not_due: another caller's refresh ended while this one waited: the token is new.
            if result.status not in ("refreshed", "not_due"):
                raise InvalidGrant("re-authorization required", code=result.error_code or "reauth_required") \
                    from None
            fetched = _fetch(connection, start=start, end=now)
    except crypto.DecryptionError:
        with transaction.atomic():
            _user_key_share(connection.user_id)
            _to_reauth(connection, code="decrypt_failed", message="The stored credentials could not be read.",
                       action="provider.token.decrypt_failed")
        return SyncResult("reauth_required", error_code="decrypt_failed")
    except ProviderError as exc:
        with transaction.atomic():
            _user_key_share(connection.user_id)
            connection.refresh_from_db()
            fields: list[str] = ["updated_at"]
            _set_error(connection, exc.code, exc.message, fields)
            connection.save(update_fields=fields)
            record(action="provider.sync.failed", outcome="failure", target=connection, actor=connection.user,
                   extra={"reason": exc.code, "provider": connection.provider_key})
        if isinstance(exc, ProviderUnavailable):
            raise
        return SyncResult("reauth_required" if isinstance(exc, InvalidGrant) else "failed", error_code=exc.code)
    tx_count = 0
    with transaction.atomic():
        _user_key_share(connection.user_id)
        for data, rows in fetched:
            account, _ = FinancialAccount.objects.update_or_create(
                connection=connection, provider_account_hash=data.hash_value,
                defaults={
                    "account_number_masked": "****" + data.account_number[-4:],
                    "account_type": data.account_type, "currency": data.currency,
                    "cash_balance": _dec(data.cash_balance), "market_value": _dec(data.market_value),
                    "total_value": _dec(data.total_value), "positions": data.positions, "synced_at": now,
                },
            )
            for row in rows:
                Transaction.objects.update_or_create(
                    account=account, provider_transaction_id=row.provider_id,
                    defaults={"type": row.type, "date": row.date, "description": row.description,
                              "amount": Decimal(row.amount), "currency": row.currency, "symbol": row.symbol},
                )
                tx_count += 1
        ProviderConnection.objects.filter(pk=connection.pk).update(
            last_sync_at=now, last_error_code="", last_error_message="", updated_at=now)
        record(action="provider.sync.completed", target=connection, actor=connection.user,
               extra={"accounts": len(fetched), "transactions": tx_count, "provider": connection.provider_key})
    return SyncResult("synced", accounts=len(fetched), transactions=tx_count)


def _dec(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def connections_sync_due_enqueue(*, limit: int = 500) -> int:
    """Beat: a sync job for each active connection not synced for PROVIDER_SYNC_MINUTES and
    with no job queued. Each job is opened by a compare-and-set on the connection's queue
    marker, so overlapping runs (or a user's POST sync) never queue a connection twice.
    Returns how many jobs were queued."""
    count = 0
    for connection_id in selectors.connections_due_for_sync(limit=limit):
        now = timezone.now()
        queued = now - timedelta(seconds=settings.PROVIDER_SYNC_QUEUED_SECONDS)
        job_id = uuid.uuid4()
        with transaction.atomic():
            won = (ProviderConnection.objects.filter(pk=connection_id)
                   .filter(Q(sync_requested_at__isnull=True) | Q(sync_requested_at__lte=queued))
                   .update(sync_job_id=job_id, sync_requested_at=now))
            if won:
                _enqueue_sync(connection_id, job_id)
                count += won
    return count


@dataclass(frozen=True)
class SyncJob:
    """The answer to ``POST providers/{id}/sync`` (``connection_sync_request``): the job's id
    and status, whether this request created it, and when it was requested and last ran."""

    job_id: str
    status: str  # queued (waiting or running) | completed (ran less than PROVIDER_SYNC_COOLDOWN_SECONDS ago)
    created: bool  # False: an existing job answered this request
    requested_at: datetime | None
    last_sync_at: datetime | None


@transaction.atomic
def connection_sync_request(*, connection: ProviderConnection) -> SyncJob:
    """POST sync: queue a sync job, or answer with the one that makes it unnecessary.

    409 REAUTH_REQUIRED unless the connection is usable; 503 PROVIDER_UNAVAILABLE while the
    provider's circuit is open. Row-locks the connection. While a job is queued or running
    (for at most PROVIDER_SYNC_QUEUED_SECONDS), or when one completed less than
    PROVIDER_SYNC_COOLDOWN_SECONDS ago, that job is the answer and nothing is queued:
    repeated requests cost neither the worker nor the provider's shared budget.
    Audits ``provider.sync.requested`` when a job is queued.
    """
    from providers import breaker

    if connection.status not in _USABLE:
        raise DomainError("REAUTH_REQUIRED", "Connect this provider again before syncing.")
    allowed = breaker.state(connection.provider_key)
    if allowed.state == breaker.OPEN:
        raise RetryLater("PROVIDER_UNAVAILABLE", "The provider is unavailable. Try again later.",
                         retry_after=allowed.retry_after)
    locked = _lock_connection(connection.pk, user_id=connection.user_id)
    if locked is None:
        raise DomainError("NOT_FOUND")
    now = timezone.now()
    if locked.sync_job_id is not None:
        if (locked.sync_requested_at is not None
                and locked.sync_requested_at > now - timedelta(seconds=settings.PROVIDER_SYNC_QUEUED_SECONDS)):
            return SyncJob(str(locked.sync_job_id), "queued", False, locked.sync_requested_at, locked.last_sync_at)
        if (locked.sync_requested_at is None and locked.last_sync_at is not None
                and locked.last_sync_at > now - timedelta(seconds=settings.PROVIDER_SYNC_COOLDOWN_SECONDS)):
            return SyncJob(str(locked.sync_job_id), "completed", False, None, locked.last_sync_at)
    fields = _sync_job_start(locked, now=now)
    locked.save(update_fields=[*fields, "updated_at"])
    record(action="provider.sync.requested", target=locked, extra={
        "provider": locked.provider_key, "job_id": str(locked.sync_job_id)})
    return SyncJob(str(locked.sync_job_id), "queued", True, now, locked.last_sync_at)


def _enqueue_sync(connection_id, job_id) -> None:
    from dashtam.outbox.services import enqueue
    from providers.tasks import sync_connection

    enqueue(sync_connection, str(connection_id), job_id=str(job_id))


def _sync_job_start(connection: ProviderConnection, *, now) -> list[str]:
    """Open a new sync job on ``connection`` (a row the caller has locked or just wrote) and
    enqueue it on commit. Returns the fields the caller must save."""
    connection.sync_job_id = uuid.uuid4()
    connection.sync_requested_at = now
    _enqueue_sync(connection.pk, connection.sync_job_id)
    return ["sync_job_id", "sync_requested_at"]
