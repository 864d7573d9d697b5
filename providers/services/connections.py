"""Connections: create, rename, delete, revoke, and the breach rotation of a user's tokens.

Every state change is audited through ``audit.services.record`` inside the same
transaction, and takes the lock order of every provider write (see ``_common``).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from audit.services import record
from dashtam.errors import DomainError, InvalidInput
from providers import registry
from providers.models import (
    ConnectionStatus,
    FinancialAccount,
    OAuthState,
    ProviderConnection,
    ProviderToken,
    Transaction,
)
from providers.services._common import _lock_connection, _user_key_share
from providers.services.oauth import oauth_authorization_start
from providers.services.refresh import _enqueue_refresh

_ALIAS_TAKEN = "You already have a connection with this alias."


@transaction.atomic
def connection_create(*, user, provider_key: str, alias: str = "") -> tuple[ProviderConnection, str]:
    """Start connecting a provider: a pending connection and its authorization URL.

    Refuses an unknown or unconfigured provider (400) and an alias the user already
    uses (409 CONFLICT). Without an alias, the provider's name is used (numbered
    when taken). Audits ``provider.connection.created``.
    """
    ptype = registry.provider_type(provider_key)
    if ptype is None:
        raise InvalidInput({"provider_key": ["Unknown provider."]})
    if not ptype.configured:
        raise InvalidInput({"provider_key": ["This provider is not configured."]})
    alias = alias.strip()
    if not alias:
        taken = set(ProviderConnection.objects.filter(user=user, alias__startswith=ptype.name)
                    .values_list("alias", flat=True))
        alias = next(a for a in (ptype.name if n == 1 else f"{ptype.name} {n}" for n in range(1, len(taken) + 2))
                     if a not in taken)
    if ProviderConnection.objects.filter(user=user, alias=alias).exists():
        raise DomainError("CONFLICT", _ALIAS_TAKEN)
    try:
        with transaction.atomic():
            connection = ProviderConnection.objects.create(user=user, provider_key=provider_key, alias=alias)
    except IntegrityError:
        raise DomainError("CONFLICT", _ALIAS_TAKEN) from None
    record(action="provider.connection.created", target=connection, extra={"provider": provider_key})
    return connection, oauth_authorization_start(connection=connection)


@transaction.atomic
def connection_update(*, connection: ProviderConnection, alias: str) -> ProviderConnection:
    """Rename a connection (alias unique per user: 409). Audits only a real change."""
    alias = alias.strip()
    if alias == connection.alias:
        return connection
    if ProviderConnection.objects.filter(user_id=connection.user_id, alias=alias).exclude(pk=connection.pk).exists():
        raise DomainError("CONFLICT", _ALIAS_TAKEN)
    _user_key_share(connection.user_id)  # lock order: user, then the connection the save updates
    old = connection.alias
    connection.alias = alias
    try:
        with transaction.atomic():
            connection.save(update_fields=["alias", "updated_at"])
    except IntegrityError:
        # A concurrent rename or create took the alias after the check above.
        connection.alias = old
        raise DomainError("CONFLICT", _ALIAS_TAKEN) from None
    record(action="provider.connection.updated", target=connection, extra={"alias_from": old, "alias_to": alias})
    return connection


@transaction.atomic
def connection_delete(*, connection: ProviderConnection, actor=None) -> None:
    """Delete a connection with its tokens, OAuth states, accounts and transactions.

    The audit trail stays (events name the connection by id). Audits
    ``provider.connection.deleted`` with the counts destroyed. Row-locks the connection
    first (the lock order of every provider write: connection, then token), so a refresh
    in flight finds it gone instead of deadlocking with the delete.
    """
    _lock_connection(connection.pk, user_id=connection.user_id)
    accounts = FinancialAccount.objects.filter(connection=connection)
    extra = {
        "provider": connection.provider_key, "alias": connection.alias,
        "accounts": accounts.count(),
        "transactions": Transaction.objects.filter(account__connection=connection).count(),
    }
    record(action="provider.connection.deleted", target=connection, extra=extra, actor=actor)
    Transaction.objects.filter(account__connection=connection).delete()
    accounts.delete()
    ProviderToken.objects.filter(connection=connection).delete()
    OAuthState.objects.filter(connection=connection).delete()
    connection.delete()


@transaction.atomic
def connection_revoke(*, connection: ProviderConnection, reason: str, actor=None) -> bool:
    """Destroy a connection's tokens and mark it revoked; synced data stays.

    Row-locks the connection; idempotent (False when already revoked). Audits
    ``provider.connection.revoked``.
    """
    locked = _lock_connection(connection.pk, user_id=connection.user_id)
    if locked is None or locked.status == ConnectionStatus.REVOKED:
        return False
    ProviderToken.objects.filter(connection=locked).delete()
    OAuthState.objects.filter(connection=locked, used_at__isnull=True).delete()
    locked.status = ConnectionStatus.REVOKED
    locked.save(update_fields=["status", "updated_at"])
    connection.status = locked.status
    record(action="provider.connection.revoked", target=locked, actor=actor, extra={"reason": reason})
    return True


def connections_revoke_for_user(*, user, reason: str) -> int:
    """Revoke every provider connection of ``user`` (account deactivation).

    Their tokens are destroyed; each revocation is audited. Idempotent: returns
    how many connections were revoked by this call.
    """
    count = 0
    for connection in ProviderConnection.objects.filter(user=user).exclude(status=ConnectionStatus.REVOKED):
        count += connection_revoke(connection=connection, reason=reason)
    # A connection revoked earlier may have a re-connect in flight: its state must die too.
    OAuthState.objects.filter(user=user, used_at__isnull=True).delete()
    return count


@transaction.atomic
def provider_tokens_rotate_for_user(*, user, reason: str) -> int:
    """Breach rotation for ``user``'s provider tokens (after a password reset).

    Raises each connection's minimum token version above its current token, then
    enqueues a forced refresh on commit: the refresh issues a newer version or,
    failing that, puts the connection in reauth_required. Row-locks the connections.
    Audits ``provider.token.rotation_requested`` per connection. Returns the count.
    """
    # Lock order of every provider write: the connections first, then (reading) their tokens.
    connections = list(ProviderConnection.objects.select_for_update().filter(user=user)
                       .exclude(status=ConnectionStatus.REVOKED).order_by("pk"))
    versions = dict(ProviderToken.objects.filter(connection__in=connections)
                    .values_list("connection_id", "token_version"))
    count = 0
    for connection in connections:
        if connection.pk not in versions:
            continue
        wanted = versions[connection.pk] + 1
        if connection.min_token_version < wanted:
            connection.min_token_version = wanted
            connection.save(update_fields=["min_token_version", "updated_at"])
        record(action="provider.token.rotation_requested", target=connection,
               extra={"reason": reason, "min_version": wanted})
        _enqueue_refresh(connection.pk, force=True)
        count += 1
    return count
