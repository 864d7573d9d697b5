"""Writes for the providers app: connections, the OAuth flow, token refresh, sync, revocation.

Every state change is audited through ``audit.services.record`` inside the same
transaction. Token plaintext exists only in local variables here: it is sealed
by ``providers.crypto`` before it touches a model, and no message, exception,
log line or audit ``extra`` ever carries it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from audit.services import record
from dashtam.api.exceptions import ProblemError
from dashtam.mail import send_templated_email
from providers import crypto, refresh_statements, registry
from providers.clients.base import TokenResponse, pkce_pair
from providers.exceptions import InvalidGrant, ProviderError, ProviderRequestRejected, ProviderUnavailable
from providers.models import (
    ConnectionStatus,
    FinancialAccount,
    OAuthState,
    ProviderConnection,
    ProviderToken,
    Transaction,
)

logger = logging.getLogger("dashtam.providers")

ROTATED, SAME, NOT_INCLUDED = "rotated", "same_token_returned", "not_included"


# --- Token sealing -------------------------------------------------------------------------
def _aad(token_id, column: str) -> str:
    return f"providers.ProviderToken:{token_id}:{column}"


def token_access_plaintext(*, token: ProviderToken) -> str:
    """The access token in clear, for one outbound call. Raises crypto.DecryptionError."""
    return crypto.decrypt(token.access_token_encrypted, aad=_aad(token.pk, "access"))


def _refresh_plaintext(token: ProviderToken) -> str:
    if not token.refresh_token_encrypted:
        return ""
    return crypto.decrypt(token.refresh_token_encrypted, aad=_aad(token.pk, "refresh"))


def _seal(token: ProviderToken, *, access: str, refresh: str | None) -> None:
    """Encrypt the tokens under the newest key. ``refresh=None`` keeps the stored refresh
    token as it is; ``key_id`` then names its key while that is an older one, so that
    ``rotate_encryption_keys`` still re-encrypts the row before the old key is dropped."""
    token.access_token_encrypted = crypto.encrypt(access, aad=_aad(token.pk, "access"))
    if refresh is not None:
        token.refresh_token_encrypted = crypto.encrypt(refresh, aad=_aad(token.pk, "refresh")) if refresh else ""
    current = crypto.current_key_id()
    kept = crypto.key_id_of(token.refresh_token_encrypted) if token.refresh_token_encrypted else current
    token.key_id = kept or current


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


# --- Connections ---------------------------------------------------------------------------
@transaction.atomic
def connection_create(*, user, provider_key: str, alias: str = "") -> tuple[ProviderConnection, str]:
    """Start connecting a provider: a pending connection and its authorization URL.

    Refuses an unknown or unconfigured provider (400) and an alias the user already
    uses (409 CONFLICT). Without an alias, the provider's name is used (numbered
    when taken). Audits ``provider.connection.created``.
    """
    ptype = registry.provider_type(provider_key)
    if ptype is None:
        raise ProblemError("VALIDATION_ERROR", "The request has invalid fields.",
                           extra={"errors": {"provider_key": ["Unknown provider."]}})
    if not ptype.configured:
        raise ProblemError("VALIDATION_ERROR", "The request has invalid fields.",
                           extra={"errors": {"provider_key": ["This provider is not configured."]}})
    alias = alias.strip()
    if not alias:
        taken = set(ProviderConnection.objects.filter(user=user, alias__startswith=ptype.name)
                    .values_list("alias", flat=True))
        alias = next(a for a in (ptype.name if n == 1 else f"{ptype.name} {n}" for n in range(1, len(taken) + 2))
                     if a not in taken)
    if ProviderConnection.objects.filter(user=user, alias=alias).exists():
        raise ProblemError("CONFLICT", "You already have a connection with this alias.")
    try:
        with transaction.atomic():
            connection = ProviderConnection.objects.create(user=user, provider_key=provider_key, alias=alias)
    except IntegrityError:
        raise ProblemError("CONFLICT", "You already have a connection with this alias.") from None
    record(action="provider.connection.created", target=connection, extra={"provider": provider_key})
    return connection, oauth_authorization_start(connection=connection)


@transaction.atomic
def connection_update(*, connection: ProviderConnection, alias: str) -> ProviderConnection:
    """Rename a connection (alias unique per user: 409). Audits only a real change."""
    alias = alias.strip()
    if alias == connection.alias:
        return connection
    if ProviderConnection.objects.filter(user_id=connection.user_id, alias=alias).exclude(pk=connection.pk).exists():
        raise ProblemError("CONFLICT", "You already have a connection with this alias.")
    _user_key_share(connection.user_id)  # lock order: user, then the connection the save updates
    old = connection.alias
    connection.alias = alias
    try:
        with transaction.atomic():
            connection.save(update_fields=["alias", "updated_at"])
    except IntegrityError:
        # A concurrent rename or create took the alias after the check above.
        connection.alias = old
        raise ProblemError("CONFLICT", "You already have a connection with this alias.") from None
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


def _enqueue_refresh(connection_id, *, force: bool = False) -> None:
    from dashtam.outbox.services import enqueue
    from providers.tasks import refresh_connection_token

    enqueue(refresh_connection_token, str(connection_id), force=force)


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


# --- OAuth -------------------------------------------------------------------------------
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
        raise ProblemError("VALIDATION_ERROR", "This provider is not available.",
                           extra={"errors": {"provider_key": ["This provider is not configured."]}})
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
        row.code_verifier_encrypted = crypto.encrypt(verifier, aad=f"providers.OAuthState:{row.pk}:verifier")
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
            verifier = crypto.decrypt(row.code_verifier_encrypted, aad=f"providers.OAuthState:{row.pk}:verifier")
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



# --- Token refresh -------------------------------------------------------------------------
@dataclass(frozen=True)
class RefreshResult:
    """The result of ``token_refresh``: ``status`` (below), the connection's status afterwards,
    the provider's ``rotation`` behaviour (rotated, same_token_returned, not_included), the new
    expiry, and for failures the error code, whether a retry may help and after how long."""

    # refreshed | fresh | not_due | in_progress | no_token | inactive | reauth_required | failed
    status: str
    connection_status: str = ""
    rotation: str = ""
    expires_at: datetime | None = None
    error_code: str = ""
    retryable: bool = False
    retry_after: float | None = None


def _rotation(old_refresh: str, new: TokenResponse) -> str:
    if new.refresh_token is None:
        return NOT_INCLUDED
    return SAME if secrets.compare_digest(new.refresh_token, old_refresh) else ROTATED


def _to_reauth(connection: ProviderConnection, *, code: str, message: str, action: str,
               outcome: str = "failure") -> None:
    fields: list[str] = ["status", "consecutive_failures", "updated_at"]
    connection.status = ConnectionStatus.REAUTH_REQUIRED
    connection.consecutive_failures += 1
    _set_error(connection, code, message, fields)
    connection.save(update_fields=fields)
    record(action=action, outcome=outcome, target=connection, actor=connection.user,
           extra={"reason": code, "provider": connection.provider_key})
    _email(connection, "provider_reauth_required")


# What a refresh changes on the token row (refresh_token_encrypted is re-sealed under the newest
# key when the provider did not rotate it; reauth_warned_at and refresh_expires_at change on rotation).
_REFRESHED_TOKEN_FIELDS = ["access_token_encrypted", "refresh_token_encrypted", "key_id", "expires_at",
                           "refresh_expires_at", "reauth_warned_at", "scope", "token_version",
                           "refresh_count", "refresh_lease_id", "refresh_lease_until", "updated_at"]
_REFRESHED_CONNECTION_FIELDS = ["status", "last_refreshed_at", "consecutive_failures", "last_error_code",
                                "last_error_message", "updated_at"]
_USABLE = (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)
_WAIT_POLL_SECONDS = 0.1


def _lease_seconds() -> float:
    """How long a claimed refresh keeps others away: longer than one token request can take
    (connect + read timeout; a token request is never retried in-line), plus a margin."""
    return settings.HTTP_TIMEOUT_CONNECT + settings.HTTP_TIMEOUT_READ + settings.PROVIDER_REFRESH_LEASE_MARGIN_SECONDS


def _lock_token(connection_id, *, wait: bool) -> ProviderToken | None:
    """The token row locked for this transaction (skip_locked unless ``wait``), with its
    connection and user. PostgreSQL: a statement written once (providers.refresh_statements)."""
    if refresh_statements.supported():
        return refresh_statements.lock_token(connection_id, wait=wait)
    qs = ProviderToken.objects.select_related("connection", "connection__user")
    qs = qs.select_for_update(of=("self",)) if wait else qs.select_for_update(skip_locked=True, of=("self",))
    # One row at most (one token per connection): no ORDER BY, unlike first().
    return next(iter(qs.filter(connection_id=connection_id)), None)


@dataclass(frozen=True)
class _Claim:
    token: ProviderToken
    lease: uuid.UUID
    stale: bool


def _refresh_claim(connection_id, *, force: bool, wait: bool, fresh_ok: bool) -> _Claim | RefreshResult:
    """Decide whether to refresh and, if so, take the refresh lease on the token row.

    Holds only the token's row lock, and only for this short transaction: nothing is
    locked while the provider is called, so a revoke (connection, then token) never waits
    on the network and never deadlocks with a refresh.
    """
    with transaction.atomic():
        token = _lock_token(connection_id, wait=wait)
        if token is None:
            exists = ProviderToken.objects.filter(connection_id=connection_id).exists()
            return RefreshResult("in_progress" if exists else "no_token")
        connection = token.connection
        if connection.status not in _USABLE:
            return RefreshResult("inactive", connection.status, expires_at=token.expires_at)
        now = timezone.now()
        stale = token.token_version < connection.min_token_version
        due = token.expires_at <= now + timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
        if (fresh_ok and not (stale or due) and connection.last_refreshed_at is not None
                and connection.last_refreshed_at > now - timedelta(seconds=settings.PROVIDER_TOKEN_FRESH_SECONDS)):
            return RefreshResult("fresh", connection.status, expires_at=token.expires_at)
        if not (force or stale or due):
            return RefreshResult("not_due", connection.status, expires_at=token.expires_at)
        if token.refresh_lease_id is not None and token.refresh_lease_until and token.refresh_lease_until > now:
            return RefreshResult("in_progress", connection.status, expires_at=token.expires_at)
        lease = uuid.uuid4()
        ProviderToken.objects.filter(pk=token.pk).update(
            refresh_lease_id=lease, refresh_lease_until=now + timedelta(seconds=_lease_seconds()))
        token.refresh_lease_id = lease
        return _Claim(token=token, lease=lease, stale=stale)


def _lease_release(claim: _Claim) -> None:
    """Give the lease back without writing anything else (nothing reached the provider)."""
    ProviderToken.objects.filter(pk=claim.token.pk, refresh_lease_id=claim.lease).update(
        refresh_lease_id=None, refresh_lease_until=None)


def _locked_for_write(claim: _Claim) -> ProviderConnection | RefreshResult:
    """The connection row-locked (first, as every provider write does), or why the claimed
    refresh must not be written: the connection was revoked/deleted meanwhile (``inactive``),
    or the lease was taken over (a reconnect replaced the token: ``in_progress``)."""
    connection = _lock_connection(claim.token.connection_id, user_id=claim.token.connection.user_id,
                                  related_user=True)
    if connection is None or connection.status not in _USABLE:
        return RefreshResult("inactive", connection.status if connection else "")
    mine = (ProviderToken.objects.select_for_update().filter(pk=claim.token.pk, refresh_lease_id=claim.lease)
            .values_list("pk", flat=True).first())
    if mine is None:
        return RefreshResult("in_progress", connection.status)
    return connection


def _write_or_release(claim: _Claim, write) -> RefreshResult:
    """Run ``write(connection)`` under the connection's lock while the lease is still ours;
    the token row is written last (lock order: connection, then token)."""
    with transaction.atomic():
        locked = _locked_for_write(claim)
        if isinstance(locked, RefreshResult):
            return locked
        return write(locked)


def token_refresh(*, connection_id, force: bool = False, wait: bool = False,
                  fresh_ok: bool = False) -> RefreshResult:
    """Refresh one connection's access token, exactly once however many callers race.

    1. Claim (short transaction, the token's row lock only): decide whether a refresh is
       needed and take the token's refresh lease (``refresh_lease_id``, valid for the longest
       a token request can take). A concurrent caller finds the lease and gets
       ``in_progress`` (or, with ``wait``, waits for it to end and then finds the token
       fresh); a later one finds the token fresh (``not_due``) unless ``force``. With
       ``fresh_ok`` (a user's forced refresh) a token obtained less than
       PROVIDER_TOKEN_FRESH_SECONDS ago is answered from the stored state (``fresh``)
       without calling the provider.
    2. The provider is called with no transaction open and no row locked.
    3. Write (short transaction): the connection's row lock, then the token row, written
       only while the lease is still ours (compare-and-write); a connection revoked or
       re-connected meanwhile is left alone. The answer is sealed and saved in this one
       transaction, so a rotated refresh token is never lost once it commits.

    Lock order everywhere in providers: connection, then token. invalid_grant, an
    undecryptable token, or a failure of a token below the minimum version ->
    reauth_required (emailed); PROVIDER_MAX_CONSECUTIVE_FAILURES transient failures ->
    error (emailed). Audits provider.token.refreshed (with the rotation type),
    provider.token.refresh_failed, provider.token.reauth_required or
    provider.token.decrypt_failed.
    """
    deadline = time.monotonic() + _lease_seconds()
    while True:
        claim = _refresh_claim(connection_id, force=force, wait=wait, fresh_ok=fresh_ok)
        if not isinstance(claim, RefreshResult):
            break
        if not (wait and claim.status == "in_progress" and time.monotonic() < deadline):
            return claim
        # Another caller is refreshing: wait for its answer, which makes the token fresh.
        time.sleep(_WAIT_POLL_SECONDS)
        force = False
    try:
        return _refresh_claimed(claim, force=force)
    except BaseException:
        try:
            _lease_release(claim)  # others need not wait for the lease to run out
        except DatabaseError:
            pass  # an enclosing transaction is broken: the lease runs out on its own
        raise


def _refresh_claimed(claim: _Claim, *, force: bool) -> RefreshResult:
    token, connection = claim.token, claim.token.connection
    try:
        old_refresh = _refresh_plaintext(token)
    except crypto.DecryptionError as exc:
        logger.error("stored provider token does not decrypt",
                     extra={"connection": str(connection.pk), "key_id": token.key_id, "error": str(exc)})

        def decrypt_failed(locked):
            _to_reauth(locked, code="decrypt_failed", message="The stored credentials could not be read.",
                       action="provider.token.decrypt_failed")
            _lease_release(claim)
            return RefreshResult("reauth_required", locked.status, error_code="decrypt_failed")
        return _write_or_release(claim, decrypt_failed)
    if not old_refresh:
        def no_refresh_token(locked):
            _to_reauth(locked, code="no_refresh_token", message="No refresh token is stored.",
                       action="provider.token.reauth_required")
            _lease_release(claim)
            return RefreshResult("reauth_required", locked.status, error_code="no_refresh_token")
        return _write_or_release(claim, no_refresh_token)
    try:
        response = _client(connection).refresh(refresh_token=old_refresh)
    except InvalidGrant:
        def invalid_grant(locked):
            _to_reauth(locked, code="invalid_grant", message="The provider refused the refresh token.",
                       action="provider.token.reauth_required")
            _lease_release(claim)
            return RefreshResult("reauth_required", locked.status, error_code="invalid_grant")
        return _write_or_release(claim, invalid_grant)
    except ProviderUnavailable as exc:
        # Nothing reached the provider (open circuit or spent budget): not the connection's failure.
        _lease_release(claim)
        return RefreshResult("failed", connection.status, error_code=exc.code, expires_at=token.expires_at,
                             retryable=True, retry_after=exc.retry_after)
    except ProviderError as exc:
        return _write_or_release(claim, lambda locked, error=exc: _refresh_failed(locked, claim, error))

    def refreshed(locked):
        rotation = _rotation(old_refresh, response)
        # Not rotated: the refresh token in use stays valid; re-sealed under the newest key too.
        _seal(token, access=response.access_token,
              refresh=response.refresh_token if rotation == ROTATED else old_refresh)
        token.expires_at = response.expires_at
        if response.refresh_expires_at and rotation == ROTATED:
            token.refresh_expires_at = response.refresh_expires_at
            token.reauth_warned_at = None
        token.scope = response.scope or token.scope
        token.token_version = max(token.token_version + 1, locked.min_token_version)
        token.refresh_count += 1
        token.refresh_lease_id = token.refresh_lease_until = None
        locked.status = ConnectionStatus.ACTIVE
        locked.last_refreshed_at = timezone.now()
        locked.consecutive_failures = 0
        locked.last_error_code = locked.last_error_message = ""
        locked.save(update_fields=_REFRESHED_CONNECTION_FIELDS)
        token.save(update_fields=_REFRESHED_TOKEN_FIELDS)
        record(action="provider.token.refreshed", target=locked, actor=locked.user, extra={
            "rotation": rotation, "version": token.token_version, "refresh_count": token.refresh_count,
            "forced": force, "provider": locked.provider_key,
        })
        return RefreshResult("refreshed", locked.status, rotation=rotation, expires_at=token.expires_at)
    return _write_or_release(claim, refreshed)


def _refresh_failed(connection, claim: _Claim, exc: ProviderError) -> RefreshResult:
    token = claim.token
    retry_after = getattr(exc, "retry_after", None)
    _lease_release(claim)
    if claim.stale:
        # Breach rotation could not get a newer token: the old one must not be used.
        _to_reauth(connection, code=exc.code, message="The credentials had to be replaced and could not be.",
                   action="provider.token.reauth_required")
        return RefreshResult("reauth_required", connection.status, error_code=exc.code)
    fields: list[str] = ["consecutive_failures", "updated_at"]
    connection.consecutive_failures += 1
    _set_error(connection, exc.code, exc.message, fields)
    became_error = (connection.consecutive_failures >= settings.PROVIDER_MAX_CONSECUTIVE_FAILURES
                    and connection.status != ConnectionStatus.ERROR)
    if became_error:
        connection.status = ConnectionStatus.ERROR
        fields.append("status")
    connection.save(update_fields=fields)
    record(action="provider.token.refresh_failed", outcome="failure", target=connection, actor=connection.user,
           extra={"reason": exc.code, "failures": connection.consecutive_failures,
                  "provider": connection.provider_key})
    if became_error:
        _email(connection, "provider_refresh_failed", failures=connection.consecutive_failures)
    logger.warning("provider token refresh failed", extra={
        "connection": str(connection.pk), "error": exc.code, "failures": connection.consecutive_failures})
    return RefreshResult("failed", connection.status, error_code=exc.code, expires_at=token.expires_at,
                         retryable=exc.transient and connection.status != ConnectionStatus.ERROR,
                         retry_after=retry_after)



def tokens_due_for_refresh(*, limit: int = 500) -> list[str]:
    """Ids of connections whose token expires within PROVIDER_REFRESH_AHEAD or is below
    the minimum version (read-only; each refresh takes its own lock)."""
    from django.db.models import F, Q

    horizon = timezone.now() + timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
    qs = (ProviderToken.objects
          .filter(connection__status__in=[ConnectionStatus.ACTIVE, ConnectionStatus.ERROR])
          .filter(Q(expires_at__lte=horizon) | Q(token_version__lt=F("connection__min_token_version")))
          .order_by("expires_at").values_list("connection_id", flat=True)[:limit])
    return [str(pk) for pk in qs]


def tokens_reauth_warn() -> int:
    """Email each user once, PROVIDER_REAUTH_WARNING_HOURS before a refresh token dies.

    One short transaction per token: the user's KEY SHARE lock, then the token's row lock
    (skip_locked: a token another run holds is left to it), re-checked and marked warned
    with its audit row and email; idempotent. Audits ``provider.token.reauth_warning``.
    """
    now = timezone.now()
    horizon = now + timedelta(hours=settings.PROVIDER_REAUTH_WARNING_HOURS)
    due = dict(ProviderToken.objects.filter(
        connection__status=ConnectionStatus.ACTIVE, reauth_warned_at__isnull=True,
        refresh_expires_at__gt=now, refresh_expires_at__lte=horizon,
    ).values_list("pk", "connection__user_id")[:500])
    count = 0
    for token_id, user_id in due.items():
        with transaction.atomic():
            _user_key_share(user_id)  # the lock order of every provider write: user, connection, token
            token = (ProviderToken.objects.select_for_update(skip_locked=True, of=("self",))
                     .select_related("connection", "connection__user")
                     .filter(pk=token_id, connection__status=ConnectionStatus.ACTIVE, reauth_warned_at__isnull=True,
                             refresh_expires_at__gt=now, refresh_expires_at__lte=horizon).first())
            if token is None:
                continue
            token.reauth_warned_at = now
            token.save(update_fields=["reauth_warned_at", "updated_at"])
            hours = max(1, int((token.refresh_expires_at - now).total_seconds() // 3600))
            record(action="provider.token.reauth_warning", target=token.connection, actor=token.connection.user,
                   extra={"expires_in_hours": hours})
            _email(token.connection, "provider_reauth_warning", hours=hours,
                   expires_at=token.refresh_expires_at.strftime("%Y-%m-%d %H:%M UTC"))
            count += 1
    return count


# --- Sync ------------------------------------------------------------------------------------
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


def connections_due_for_sync(*, limit: int = 500) -> list[str]:
    """Ids of active connections not synced for PROVIDER_SYNC_MINUTES and with no sync
    queued in the last PROVIDER_SYNC_QUEUED_SECONDS, least recently synced first, at most
    ``limit``."""

    from django.db.models import Q

    now = timezone.now()
    horizon = now - timedelta(minutes=settings.PROVIDER_SYNC_MINUTES)
    queued = now - timedelta(seconds=settings.PROVIDER_SYNC_QUEUED_SECONDS)
    qs = (ProviderConnection.objects.filter(status=ConnectionStatus.ACTIVE)
          .filter(Q(last_sync_at__isnull=True) | Q(last_sync_at__lte=horizon))
          .filter(Q(sync_requested_at__isnull=True) | Q(sync_requested_at__lte=queued))
          .order_by("last_sync_at").values_list("pk", flat=True)[:limit])
    return [str(pk) for pk in qs]


def connections_sync_due_enqueue(*, limit: int = 500) -> int:
    """Beat: a sync job for each active connection not synced for PROVIDER_SYNC_MINUTES and
    with no job queued. Each job is opened by a compare-and-set on the connection's queue
    marker, so overlapping runs (or a user's POST sync) never queue a connection twice.
    Returns how many jobs were queued."""
    from django.db.models import Q

    count = 0
    for connection_id in connections_due_for_sync(limit=limit):
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
        raise ProblemError("REAUTH_REQUIRED", "Connect this provider again before syncing.")
    allowed = breaker.state(connection.provider_key)
    if allowed.state == breaker.OPEN:
        from dashtam.api.exceptions import RetryAfterError

        raise RetryAfterError("PROVIDER_UNAVAILABLE", "The provider is unavailable. Try again later.",
                              retry_after=allowed.retry_after)
    locked = _lock_connection(connection.pk, user_id=connection.user_id)
    if locked is None:
        raise ProblemError("NOT_FOUND")
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


def oauth_states_cleanup() -> int:
    """Delete OAuth states that expired more than a day ago (used or not). Idempotent."""
    cutoff = timezone.now() - timedelta(days=1)
    deleted, _ = OAuthState.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


# --- Key rotation --------------------------------------------------------------------------
def token_reencrypt(*, token_id) -> bool:
    """Re-seal one token row under the newest key. Row-locked; idempotent (False when it
    already uses the newest key). Raises crypto.DecryptionError when it cannot be opened."""
    with transaction.atomic():
        token = ProviderToken.objects.select_for_update().filter(pk=token_id).first()
        if token is None or token.key_id == crypto.current_key_id():
            return False
        access = token_access_plaintext(token=token)
        refresh = _refresh_plaintext(token)
        _seal(token, access=access, refresh=refresh)
        token.save(update_fields=["access_token_encrypted", "refresh_token_encrypted", "key_id", "updated_at"])
        return True
