"""Writes for the providers app, one module per concern:

- ``connections``: create, rename, delete, revoke; breach rotation of a user's tokens.
- ``oauth``: start and complete an authorization; forget expired states.
- ``refresh``: refresh a token exactly once; warn before a refresh token dies.
- ``sync``: fetch and upsert accounts and transactions; the sync jobs.
- ``keys``: the associated data of sealed values, sealing and opening tokens, key rotation.

Every state change is audited through ``audit.services.record`` inside the same
transaction. Services refuse with ``dashtam.errors`` exceptions. The reads that pick what
the background work does (the due-lists) are in ``providers.selectors``.

Callers import from here (``from providers.services import token_refresh``); the names
below are the package's public surface.
"""

from __future__ import annotations

from providers.services.connections import (
    connection_create,
    connection_delete,
    connection_revoke,
    connection_update,
    connections_revoke_for_user,
    provider_tokens_rotate_for_user,
)
from providers.services.keys import (
    _refresh_plaintext,  # the bench seeder and tests read and seal tokens as the services do
    _seal,
    column_aad,
    oauth_state_reencrypt,
    token_access_plaintext,
    token_reencrypt,
)
from providers.services.oauth import (
    CallbackOutcome,
    oauth_authorization_complete,
    oauth_authorization_start,
    oauth_states_cleanup,
)
from providers.services.refresh import (
    NOT_INCLUDED,
    ROTATED,
    SAME,
    RefreshResult,
    token_refresh,
    tokens_reauth_warn,
)
from providers.services.sync import (
    SyncJob,
    SyncResult,
    connection_sync,
    connection_sync_request,
    connections_sync_due_enqueue,
)

__all__ = [
    "NOT_INCLUDED",
    "ROTATED",
    "SAME",
    "CallbackOutcome",
    "RefreshResult",
    "SyncJob",
    "SyncResult",
    "_refresh_plaintext",
    "_seal",
    "column_aad",
    "connection_create",
    "connection_delete",
    "connection_revoke",
    "connection_sync",
    "connection_sync_request",
    "connection_update",
    "connections_revoke_for_user",
    "connections_sync_due_enqueue",
    "oauth_authorization_complete",
    "oauth_authorization_start",
    "oauth_state_reencrypt",
    "oauth_states_cleanup",
    "provider_tokens_rotate_for_user",
    "token_access_plaintext",
    "token_reencrypt",
    "token_refresh",
    "tokens_reauth_warn",
]
