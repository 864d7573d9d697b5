"""Reads for the providers app. A user only ever sees their own rows (another's id -> 404)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from providers import breaker, registry
from providers.models import FinancialAccount, ProviderConnection, Transaction


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
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from providers.models import ConnectionStatus, ProviderToken

    now = timezone.now()
    ahead = timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
    earliest = (ProviderToken.objects
                .filter(connection__status__in=[ConnectionStatus.ACTIVE, ConnectionStatus.ERROR],
                        expires_at__lte=now + ahead)
                .order_by("expires_at").values_list("expires_at", flat=True).first())
    if earliest is None:
        return 0.0
    return max(0.0, (now - (earliest - ahead)).total_seconds())
