"""Reads for the providers app. A user only ever sees their own rows (another's id -> 404).

The due-lists at the end pick what the background work refreshes, syncs, warns about and
cleans up; they read only, and the service that acts on each row takes its own lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from providers import breaker, registry
from providers.models import (
    ConnectionStatus,
    FinancialAccount,
    OAuthState,
    ProviderConnection,
    ProviderToken,
    Transaction,
)


def circuit_breaker_states() -> dict:
    """State of each provider's circuit breaker, for /readyz and the admin:
    ``{key: {"state": closed|open|half_open, "failures": n, "retry_after": s}}``."""
    return {ptype.key: breaker.state(ptype.key).as_dict() for ptype in registry.provider_types()}


def connection_list(*, user) -> QuerySet[ProviderConnection]:
    """The user's provider connections (with their token rows, for expiry and rotation fields)."""

    return ProviderConnection.objects.filter(user=user).select_related("token")


def connection_get(*, user, connection_id) -> ProviderConnection:
    """One of the user's connections; ``Http404`` for an unknown id or another user's."""

    connection = connection_list(user=user).filter(pk=connection_id).first()
    if connection is None:
        raise Http404
    return connection


def account_list(*, user, connection_id=None, account_type: str = "", synced_since=None) -> QuerySet[FinancialAccount]:
    """The user's synced accounts, optionally of one connection, of one type (case-insensitive)
    or synced since a time."""

    qs = FinancialAccount.objects.filter(connection__user=user).select_related("connection")
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    if account_type:
        qs = qs.filter(account_type__iexact=account_type)
    if synced_since:
        qs = qs.filter(synced_at__gte=synced_since)
    return qs


def account_get(*, user, account_id) -> FinancialAccount:
    """One of the user's accounts; ``Http404`` for an unknown id or another user's."""

    account = account_list(user=user).filter(pk=account_id).first()
    if account is None:
        raise Http404
    return account


def transaction_list(*, account: FinancialAccount, start=None, end=None, types=None) -> QuerySet[Transaction]:
    """The account's transactions, optionally from ``start`` to ``end`` (inclusive, by date)
    and of the given ``types``. The caller has already checked the account is the user's
    (``account_get``)."""

    qs = Transaction.objects.filter(account=account)
    if start:
        qs = qs.filter(date__gte=start)
    if end:
        qs = qs.filter(date__lte=end)
    if types:
        qs = qs.filter(type__in=types)
    return qs


def token_refresh_lag_seconds() -> float:
    """How long the most overdue token refresh has been waiting, in seconds (0 when none is late).

    A token is due PROVIDER_REFRESH_AHEAD seconds before it expires; the lag is
    the time since the earliest due moment among active (or erroring) connections.
    One indexed read of the earliest ``expires_at``; for the metrics scrape.
    """
    now = timezone.now()
    ahead = timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
    earliest = (ProviderToken.objects
                .filter(connection__status__in=[ConnectionStatus.ACTIVE, ConnectionStatus.ERROR],
                        expires_at__lte=now + ahead)
                .order_by("expires_at").values_list("expires_at", flat=True).first())
    if earliest is None:
        return 0.0
    return max(0.0, (now - (earliest - ahead)).total_seconds())


# --- Due-lists for the background work ----------------------------------------------------------
def tokens_due_for_refresh(*, limit: int = 500) -> list[str]:
    """Ids of connections whose token expires within PROVIDER_REFRESH_AHEAD or is below
    the minimum version, most urgent first, at most ``limit`` (read-only; each refresh
    takes its own lock)."""
    horizon = timezone.now() + timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
    qs = (ProviderToken.objects
          .filter(connection__status__in=[ConnectionStatus.ACTIVE, ConnectionStatus.ERROR])
          .filter(Q(expires_at__lte=horizon) | Q(token_version__lt=F("connection__min_token_version")))
          .order_by("expires_at").values_list("connection_id", flat=True)[:limit])
    return [str(pk) for pk in qs]


def tokens_due_for_reauth_warning(*, now: datetime) -> QuerySet[ProviderToken]:
    """Tokens of active connections whose refresh token dies within
    PROVIDER_REAUTH_WARNING_HOURS of ``now`` and whose user was not warned yet."""
    horizon = now + timedelta(hours=settings.PROVIDER_REAUTH_WARNING_HOURS)
    return ProviderToken.objects.filter(
        connection__status=ConnectionStatus.ACTIVE, reauth_warned_at__isnull=True,
        refresh_expires_at__gt=now, refresh_expires_at__lte=horizon,
    )


def connections_due_for_sync(*, limit: int = 500) -> list[str]:
    """Ids of active connections not synced for PROVIDER_SYNC_MINUTES and with no sync
    queued in the last PROVIDER_SYNC_QUEUED_SECONDS, least recently synced first, at most
    ``limit``."""
    now = timezone.now()
    horizon = now - timedelta(minutes=settings.PROVIDER_SYNC_MINUTES)
    queued = now - timedelta(seconds=settings.PROVIDER_SYNC_QUEUED_SECONDS)
    qs = (ProviderConnection.objects.filter(status=ConnectionStatus.ACTIVE)
          .filter(Q(last_sync_at__isnull=True) | Q(last_sync_at__lte=horizon))
          .filter(Q(sync_requested_at__isnull=True) | Q(sync_requested_at__lte=queued))
          .order_by("last_sync_at").values_list("pk", flat=True)[:limit])
    return [str(pk) for pk in qs]


def oauth_states_expired(*, before: datetime) -> QuerySet[OAuthState]:
    """OAuth states (used or not) that expired before ``before``."""
    return OAuthState.objects.filter(expires_at__lt=before)
