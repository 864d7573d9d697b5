"""What every provider service shares: the provider's client, the lock order of every
provider write (the user's KEY SHARE lock, the connection, then the token), the error
fields on a connection and the emails to its user.

Names with a leading underscore are private to the ``providers.services`` package.
"""

from __future__ import annotations

from django.conf import settings

from dashtam.mail import send_templated_email
from providers import refresh_statements, registry
from providers.exceptions import ProviderError
from providers.models import ConnectionStatus, ProviderConnection

# The statuses in which a connection's tokens are refreshed and its data synced.
_USABLE = (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)


def _client(connection: ProviderConnection):
    ptype = registry.provider_type(connection.provider_key)
    if ptype is None or not ptype.configured:
        raise ProviderError(f"provider {connection.provider_key!r} is not available", code="not_configured")
    return ptype.client()


def _user_key_share(user_id) -> None:
    """Take a KEY SHARE lock on the user row for this transaction (PostgreSQL; SQLite has none).

    The lock order of every provider write is user, connection, token. An audit row names
    its actor by foreign key, and inserting it takes this very lock on the user; taken
    only then, after the connection's lock, it would wait for a deactivation that holds the
    user and waits for the connection: a deadlock. Taken first, the write simply waits for
    the deactivation to commit (and then finds the connection revoked).
    """
    refresh_statements.user_key_share(user_id)


def _lock_connection(connection_id, *, user_id, related_user: bool = False) -> ProviderConnection | None:
    """The connection row-locked for a write, after its user's KEY SHARE lock (see above)."""
    _user_key_share(user_id)
    qs = ProviderConnection.objects.select_for_update(of=("self",))
    if related_user:
        qs = qs.select_related("user")
    return qs.filter(pk=connection_id).first()


def _set_error(connection: ProviderConnection, code: str, message: str, fields: list[str]) -> None:
    connection.last_error_code = code[:64]
    connection.last_error_message = message[:255]
    fields += ["last_error_code", "last_error_message"]


def _reconnect_url(connection: ProviderConnection) -> str:
    return f"{settings.FRONTEND_URL}/connections/{connection.pk}"


def _email(connection: ProviderConnection, template: str, **extra) -> None:
    user = connection.user
    ptype = registry.provider_type(connection.provider_key)
    send_templated_email(to=user.email, template=template, context={
        "first_name": user.first_name, "alias": connection.alias,
        "provider_name": ptype.name if ptype else connection.provider_key,
        "reconnect_url": _reconnect_url(connection), **extra,
    })
