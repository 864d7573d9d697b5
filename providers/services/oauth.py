"""The OAuth flow: starting an authorization (state, PKCE) and completing it for the user who
started it (the code exchange and the first tokens), and forgetting expired states.

Every state change is audited inside the same transaction. The provider is called with no
transaction open and no row locked.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import record
from dashtam import crypto
from dashtam.errors import InvalidInput
from providers import registry, selectors
from providers.clients.base import TokenResponse, pkce_pair
from providers.exceptions import InvalidGrant, ProviderError
from providers.models import ConnectionStatus, OAuthState, ProviderConnection, ProviderToken
from providers.services._common import _client, _lock_connection, _set_error, _user_key_share
from providers.services.keys import _seal, column_aad
from providers.services.sync import _sync_job_start

logger = logging.getLogger("dashtam.providers")


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@transaction.atomic
def oauth_authorization_start(*, connection: ProviderConnection) -> str:
    """A new authorization URL for ``connection``: a fresh single-use state (32 random
    bytes, only its hash stored, bound to the user and the connection, valid
    OAUTH_STATE_TTL_SECONDS) and, where the provider supports it, a PKCE S256 pair.

    Earlier unused states of the connection stop working.
    """
    ptype = registry.provider_type(connection.provider_key)
    if ptype is None or not ptype.configured:
        raise InvalidInput({"provider_key": ["This provider is not configured."]},
                           detail="This provider is not available.")
    client = ptype.client()
    _user_key_share(connection.user_id)  # lock order: user (the state and audit rows name it), then the rest
    OAuthState.objects.filter(connection=connection, used_at__isnull=True).delete()
    state = secrets.token_urlsafe(32)
    row = OAuthState(
        state_hash=_state_hash(state), user_id=connection.user_id, connection=connection,
        provider_key=connection.provider_key,
        expires_at=timezone.now() + timedelta(seconds=settings.OAUTH_STATE_TTL_SECONDS),
    )
    challenge = None
    if client.supports_pkce:
        verifier, challenge = pkce_pair()
        row.code_verifier_encrypted = crypto.encrypt(verifier, aad=column_aad(row, "verifier"))
    row.save()
    record(action="provider.connection.authorization_started", target=connection,
           extra={"provider_key": connection.provider_key, "pkce": challenge is not None})
    return client.authorization_url(state=state, code_challenge=challenge)


@dataclass(frozen=True)
class CallbackOutcome:
    """The result of ``oauth_authorization_complete``: ``outcome`` (``connected``, or why not:
    denied, invalid_state, expired, replayed, mismatch, failed), the connection it concerns
    (never another user's) and a human-readable ``detail``."""

    outcome: str  # connected | denied | invalid_state | expired | replayed | mismatch | failed
    connection_id: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "connected"


def oauth_authorization_complete(*, user, provider_key: str, state: str, code: str = "",
                                 error: str = "") -> CallbackOutcome:
    """Finish an authorization for ``user``, who must be the user who started it.

    The public callback only hands ``state`` and ``code`` (or ``error``) to the front end;
    this, called with the bearer of the user who started the flow, does the exchange. So a
    victim who approves an authorization URL made by someone else never connects their
    brokerage to the other person's connection.

    - A state presented by another user is spent (compare-and-swap on ``used_at``), audited
      (``provider.oauth.failed``, reason ``oauth_state_wrong_user``) and refused as
      ``invalid_state``; its connection is left exactly as it was, and the answer does not
      name it.
    - For its owner, replayed / expired / mismatched / declined states are spent, recorded on
      the connection (``last_error_*``) and audited.
    - Otherwise the state is spent and committed first, then the code is exchanged with no
      transaction open and no row locked (a concurrent completion finds the state used); the
      tokens are then saved under the connection's row lock, then the token's (the lock order
      of every provider write). Audits ``provider.connection.connected`` and enqueues the
      first sync.

    Never raises for a bad completion: every outcome is a value the view turns into JSON.
    """
    now = timezone.now()
    row = None
    if state:
        row = (OAuthState.objects.select_related("connection", "user")
               .filter(state_hash=_state_hash(state)).first())
    if row is None:
        with transaction.atomic():
            record(action="provider.oauth.failed", outcome="denied", actor=user,
                   extra={"provider": provider_key[:32], "reason": "unknown_state"})
        return CallbackOutcome("invalid_state", None, _OUTCOME_TEXT["invalid_state"])
    connection = row.connection
    if row.user_id != user.pk:
        with transaction.atomic():
            spent = _state_use(row, now)
            record(action="provider.oauth.failed", outcome="denied", target=connection, actor=user,
                   extra={"provider": provider_key[:32], "reason": "oauth_state_wrong_user",
                          "state_spent": spent, "state_owner_id": str(row.user_id)})
        logger.warning("oauth state presented by another user", extra={"provider": provider_key[:32]})
        return CallbackOutcome("invalid_state", None, _OUTCOME_TEXT["invalid_state"])
    reason = outcome = ""
    if row.used_at is not None:
        reason, outcome = "oauth_state_replayed", "replayed"
    elif not row.user.is_active or connection.user_id != row.user_id:
        reason, outcome = "oauth_state_user_inactive", "invalid_state"
    elif row.provider_key != provider_key:
        reason, outcome = "oauth_state_mismatch", "mismatch"
    elif row.expires_at <= now:
        reason, outcome = "oauth_state_expired", "expired"
    elif error == "access_denied":
        reason, outcome = "access_denied", "denied"
    elif error:
        reason, outcome = "oauth_error", "failed"
    with transaction.atomic():
        _user_key_share(row.user_id)  # lock order: user first (a deactivation deletes the user's states)
        if reason and row.used_at is None and not _state_use(row, now):
            reason, outcome = "oauth_state_replayed", "replayed"
        if not reason and not _state_use(row, now):
            reason, outcome = "oauth_state_replayed", "replayed"
        if reason:
            return _oauth_refused(row=row, connection_id=connection.pk, reason=reason, outcome=outcome,
                                  provider_key=provider_key)
    # The state is spent and committed: nothing is locked while the provider answers.
    try:
        verifier = None
        if row.code_verifier_encrypted:
            verifier = crypto.decrypt(row.code_verifier_encrypted, aad=column_aad(row, "verifier"))
        if not code:
            raise InvalidGrant("no authorization code", code="missing_code")
        client = _client(connection)
        response = client.exchange_code(code=code, code_verifier=verifier)
    except (ProviderError, crypto.DecryptionError) as exc:
        reason = getattr(exc, "code", "decrypt_failed")
        logger.warning("oauth code exchange failed", extra={"provider": connection.provider_key, "error": reason})
        with transaction.atomic():
            return _oauth_refused(row=row, connection_id=connection.pk, reason=reason, outcome="failed",
                                  provider_key=provider_key, failure=True)
    with transaction.atomic():
        return _oauth_tokens_store(row=row, connection_id=connection.pk, was_revoked=(
            connection.status == ConnectionStatus.REVOKED), response=response, client=client)


def _oauth_refused(*, row: OAuthState, connection_id, reason: str, outcome: str, provider_key: str,
                   failure: bool = False) -> CallbackOutcome:
    """Record a refused completion on its (row-locked) connection and audit it. A refusal never
    downgrades a connection that is already active (a replay), except a failed exchange of a
    pending one, which becomes ``error``."""
    connection = _lock_connection(connection_id, user_id=row.user_id)
    if connection is None:
        record(action="provider.oauth.failed", outcome="failure" if failure else "denied", actor=row.user,
               extra={"reason": reason, "provider": provider_key[:32]})
        return CallbackOutcome("failed" if failure else "invalid_state", None, _OUTCOME_TEXT["invalid_state"])
    fields: list[str] = ["updated_at"]
    _set_error(connection, reason, _OUTCOME_TEXT[outcome], fields)
    if failure and connection.status == ConnectionStatus.PENDING:
        connection.status = ConnectionStatus.ERROR
        fields.append("status")
    connection.save(update_fields=fields)
    record(action="provider.oauth.failed", outcome="failure" if failure else "denied", target=connection,
           actor=row.user, extra={"reason": reason, "provider": provider_key[:32]})
    return CallbackOutcome(outcome, str(connection.pk), _OUTCOME_TEXT[outcome])


def _oauth_tokens_store(*, row: OAuthState, connection_id, was_revoked: bool, response: TokenResponse,
                        client) -> CallbackOutcome:
    """Save the exchanged tokens: the connection's row lock, then the token's. A connection that
    was deleted, revoked or whose user was deactivated while the provider answered stays as it is
    (the tokens are dropped). A refresh in flight on the old token loses its lease."""
    connection = _lock_connection(connection_id, user_id=row.user_id, related_user=True)
    if connection is None or not connection.user.is_active or (
            connection.status == ConnectionStatus.REVOKED and not was_revoked):
        record(action="provider.oauth.failed", outcome="denied", target=connection, actor=row.user,
               extra={"reason": "oauth_connection_gone", "provider": row.provider_key})
        return CallbackOutcome("invalid_state", None, _OUTCOME_TEXT["invalid_state"])
    token = ProviderToken.objects.select_for_update().filter(connection=connection).first()
    version = max(connection.min_token_version, (token.token_version + 1) if token else 1)
    if token is None:
        token = ProviderToken(connection=connection)
    _seal(token, access=response.access_token, refresh=response.refresh_token or "")
    token.expires_at = response.expires_at
    token.refresh_expires_at = response.refresh_expires_at or (timezone.now() + client.refresh_token_lifetime)
    token.scope = response.scope
    token.token_version = version
    token.reauth_warned_at = None
    token.refresh_lease_id = token.refresh_lease_until = None
    token.save()
    now = timezone.now()
    connection.status = ConnectionStatus.ACTIVE
    connection.connected_at = now
    connection.last_refreshed_at = now
    connection.consecutive_failures = 0
    connection.min_token_version = version
    connection.last_error_code = connection.last_error_message = ""
    _sync_job_start(connection, now=now)
    connection.save()
    record(action="provider.connection.connected", target=connection, actor=row.user,
           extra={"provider": connection.provider_key, "version": version})
    return CallbackOutcome("connected", str(connection.pk), "The provider is connected.")


def _state_use(row: OAuthState, now) -> bool:
    """Mark the state used: a compare-and-swap, so of two completions that both read it unused
    only one goes on, whether or not the database honours row locks (SQLite does not)."""
    won = OAuthState.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now)
    row.used_at = now
    return won == 1


_OUTCOME_TEXT = {
    "invalid_state": "The authorization link is not valid.",
    "replayed": "This authorization link was already used.",
    "mismatch": "The authorization came back from a different provider.",
    "expired": "The authorization took too long. Start again.",
    "denied": "The authorization was declined at the provider.",
    "failed": "The provider did not complete the authorization.",
}


def oauth_states_cleanup() -> int:
    """Delete OAuth states that expired more than a day ago (used or not). Idempotent."""
    deleted, _ = selectors.oauth_states_expired(before=timezone.now() - timedelta(days=1)).delete()
    return deleted
