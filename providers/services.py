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
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
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
    ``provider.connection.deleted`` with the counts destroyed.
    """
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
    locked = ProviderConnection.objects.select_for_update().get(pk=connection.pk)
    if locked.status == ConnectionStatus.REVOKED:
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
    failing that, puts the connection in reauth_required. Row-locks the tokens.
    Audits ``provider.token.rotation_requested`` per connection. Returns the count.
    """
    tokens = list(ProviderToken.objects.select_for_update().select_related("connection")
                  .filter(connection__user=user)
                  .exclude(connection__status=ConnectionStatus.REVOKED))
    for token in tokens:
        connection = token.connection
        wanted = token.token_version + 1
        if connection.min_token_version < wanted:
            connection.min_token_version = wanted
            connection.save(update_fields=["min_token_version", "updated_at"])
        record(action="provider.token.rotation_requested", target=connection,
               extra={"reason": reason, "min_version": wanted})
        _enqueue_refresh(connection.pk, force=True)
    return len(tokens)


def _enqueue_refresh(connection_id, *, force: bool = False) -> None:
    from dashtam.outbox.services import enqueue
    from providers.tasks import refresh_connection_token

    enqueue(refresh_connection_token, str(connection_id), force=force)


def _enqueue_sync(connection_id) -> None:
    from dashtam.outbox.services import enqueue
    from providers.tasks import sync_connection

    enqueue(sync_connection, str(connection_id))


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
    outcome: str  # connected | denied | invalid_state | expired | replayed | mismatch | failed
    connection_id: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "connected"


def oauth_callback_complete(*, provider_key: str, code: str, state: str, error: str = "") -> CallbackOutcome:
    """Finish an authorization from the provider's redirect. The state is the credential.

    Row-locks the state and uses it up whatever happens, so a replay finds it used.
    The code is exchanged and the state and tokens are saved in the same transaction.
    Audits ``provider.connection.connected`` or ``provider.oauth.failed``, and
    records the outcome on the connection (last_error_*). Never raises for a bad
    callback: every outcome is a value the view turns into a redirect or JSON.
    """
    with transaction.atomic():
        row = None
        if state:
            row = (OAuthState.objects.select_for_update().select_related("connection", "user")
                   .filter(state_hash=_state_hash(state)).first())
        if row is None:
            record(action="provider.oauth.failed", outcome="denied", actor=None,
                   extra={"provider": provider_key[:32], "reason": "unknown_state"})
            return CallbackOutcome("invalid_state", None, "The authorization link is not valid.")
        connection = row.connection
        now = timezone.now()
        reason = ""
        if row.used_at is not None:
            reason, outcome = "oauth_state_replayed", "replayed"
        elif not row.user.is_active or connection.user_id != row.user_id:
            # The state's owner was deactivated meanwhile: never connect on their behalf.
            reason, outcome = "oauth_state_user_inactive", "invalid_state"
        elif row.provider_key != provider_key:
            reason, outcome = "oauth_state_mismatch", "mismatch"
        elif row.expires_at <= now:
            reason, outcome = "oauth_state_expired", "expired"
        elif error:
            reason, outcome = ("access_denied" if error == "access_denied" else "oauth_error"), "denied"
        if reason and row.used_at is None and not _state_use(row, now):
            reason, outcome = "oauth_state_replayed", "replayed"
        if reason:
            fields: list[str] = ["updated_at"]
            _set_error(connection, reason, _OUTCOME_TEXT[outcome], fields)
            connection.save(update_fields=fields)
            record(action="provider.oauth.failed", outcome="denied", target=connection, actor=row.user,
                   extra={"reason": reason, "provider": provider_key[:32]})
            return CallbackOutcome(outcome, str(connection.pk), _OUTCOME_TEXT[outcome])
        return _complete_exchange(row=row, connection=connection, code=code)


def _state_use(row: OAuthState, now) -> bool:
    """Mark the state used: a compare-and-swap, so of two callbacks that both read it unused
    only one goes on, whether or not the database honoured the row lock (SQLite does not)."""
    won = OAuthState.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now)
    row.used_at = now
    return won == 1


def _replayed(row: OAuthState, connection: ProviderConnection) -> CallbackOutcome:
    record(action="provider.oauth.failed", outcome="denied", target=connection, actor=row.user,
           extra={"reason": "oauth_state_replayed", "provider": connection.provider_key})
    return CallbackOutcome("replayed", str(connection.pk), _OUTCOME_TEXT["replayed"])


_OUTCOME_TEXT = {
    "invalid_state": "The authorization link is not valid.",
    "replayed": "This authorization link was already used.",
    "mismatch": "The authorization came back from a different provider.",
    "expired": "The authorization took too long. Start again.",
    "denied": "The authorization was declined at the provider.",
    "failed": "The provider did not complete the authorization.",
}


def _complete_exchange(*, row: OAuthState, connection: ProviderConnection, code: str) -> CallbackOutcome:
    fields: list[str] = ["updated_at"]
    try:
        verifier = None
        if row.code_verifier_encrypted:
            verifier = crypto.decrypt(row.code_verifier_encrypted, aad=f"providers.OAuthState:{row.pk}:verifier")
        if not code:
            raise InvalidGrant("no authorization code", code="missing_code")
        client = _client(connection)
        # No write before this call: on SQLite a write would hold the database lock for the whole
        # exchange. On PostgreSQL the state row is already locked, so a replay waits and finds it used.
        response = client.exchange_code(code=code, code_verifier=verifier)
    except (ProviderError, crypto.DecryptionError) as exc:
        if not _state_use(row, timezone.now()):
            return _replayed(row, connection)
        reason = getattr(exc, "code", "decrypt_failed")
        _set_error(connection, reason, _OUTCOME_TEXT["failed"], fields)
        if connection.status == ConnectionStatus.PENDING:
            connection.status = ConnectionStatus.ERROR
            fields.append("status")
        connection.save(update_fields=fields)
        record(action="provider.oauth.failed", outcome="failure", target=connection, actor=row.user,
               extra={"reason": reason, "provider": connection.provider_key})
        logger.warning("oauth code exchange failed", extra={"provider": connection.provider_key, "error": reason})
        return CallbackOutcome("failed", str(connection.pk), _OUTCOME_TEXT["failed"])
    if not _state_use(row, timezone.now()):
        return _replayed(row, connection)
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
    token.save()
    now = timezone.now()
    connection.status = ConnectionStatus.ACTIVE
    connection.connected_at = now
    connection.last_refreshed_at = now
    connection.consecutive_failures = 0
    connection.min_token_version = version
    connection.last_error_code = connection.last_error_message = ""
    connection.save()
    record(action="provider.connection.connected", target=connection, actor=row.user,
           extra={"provider": connection.provider_key, "version": version})
    _enqueue_sync(connection.pk)
    return CallbackOutcome("connected", str(connection.pk), "The provider is connected.")


# --- Token refresh -------------------------------------------------------------------------
@dataclass(frozen=True)
class RefreshResult:
    status: str  # refreshed | not_due | in_progress | no_token | inactive | reauth_required | failed
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
                           "refresh_count", "updated_at"]
_REFRESHED_CONNECTION_FIELDS = ["status", "last_refreshed_at", "consecutive_failures", "last_error_code",
                                "last_error_message", "updated_at"]


def _lock_token(connection_id, *, wait: bool) -> ProviderToken | None:
    """The token row locked for this transaction (skip_locked unless ``wait``), with its
    connection and user. PostgreSQL: statements written once (providers.refresh_statements)."""
    if refresh_statements.supported():
        return refresh_statements.lock_token(connection_id, wait=wait)
    qs = ProviderToken.objects.select_related("connection", "connection__user")
    qs = qs.select_for_update(of=("self",)) if wait else qs.select_for_update(skip_locked=True, of=("self",))
    # One row at most (one token per connection): no ORDER BY, unlike first().
    return next(iter(qs.filter(connection_id=connection_id)), None)


def token_refresh(*, connection_id, force: bool = False, wait: bool = False) -> RefreshResult:
    """Refresh one connection's access token, exactly once however many callers race.

    Locks the token row (``select_for_update(skip_locked=True)``, or waiting when
    ``wait``): a concurrent caller gets ``in_progress``; a later one finds the
    token fresh (``not_due``) unless ``force``. The provider's answer is sealed
    and saved in the same transaction that read it, so a rotated refresh token is
    never lost once saved. invalid_grant, an undecryptable token, or a failure of
    a token below the minimum version -> reauth_required (emailed);
    PROVIDER_MAX_CONSECUTIVE_FAILURES transient failures -> error (emailed).
    Audits provider.token.refreshed (with the rotation type),
    provider.token.refresh_failed, provider.token.reauth_required or
    provider.token.decrypt_failed.
    """
    with transaction.atomic():
        token = _lock_token(connection_id, wait=wait)
        if token is None:
            exists = ProviderToken.objects.filter(connection_id=connection_id).exists()
            return RefreshResult("in_progress" if exists else "no_token")
        connection = token.connection
        if connection.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR):
            return RefreshResult("inactive", connection.status, expires_at=token.expires_at)
        now = timezone.now()
        stale = token.token_version < connection.min_token_version
        due = token.expires_at <= now + timedelta(seconds=settings.PROVIDER_REFRESH_AHEAD)
        if not (force or stale or due):
            return RefreshResult("not_due", connection.status, expires_at=token.expires_at)
        try:
            old_refresh = _refresh_plaintext(token)
        except crypto.DecryptionError as exc:
            logger.error("stored provider token does not decrypt",
                         extra={"connection": str(connection.pk), "key_id": token.key_id, "error": str(exc)})
            _to_reauth(connection, code="decrypt_failed", message="The stored credentials could not be read.",
                       action="provider.token.decrypt_failed")
            return RefreshResult("reauth_required", connection.status, error_code="decrypt_failed")
        if not old_refresh:
            _to_reauth(connection, code="no_refresh_token", message="No refresh token is stored.",
                       action="provider.token.reauth_required")
            return RefreshResult("reauth_required", connection.status, error_code="no_refresh_token")
        try:
            response = _client(connection).refresh(refresh_token=old_refresh)
        except InvalidGrant:
            _to_reauth(connection, code="invalid_grant", message="The provider refused the refresh token.",
                       action="provider.token.reauth_required")
            return RefreshResult("reauth_required", connection.status, error_code="invalid_grant")
        except ProviderError as exc:
            return _refresh_failed(connection, token, exc, stale=stale)
        rotation = _rotation(old_refresh, response)
        # Not rotated: the refresh token in use stays valid; re-sealed under the newest key too.
        _seal(token, access=response.access_token,
              refresh=response.refresh_token if rotation == ROTATED else old_refresh)
        token.expires_at = response.expires_at
        if response.refresh_expires_at and rotation == ROTATED:
            token.refresh_expires_at = response.refresh_expires_at
            token.reauth_warned_at = None
        token.scope = response.scope or token.scope
        token.token_version = max(token.token_version + 1, connection.min_token_version)
        token.refresh_count += 1
        connection.status = ConnectionStatus.ACTIVE
        connection.last_refreshed_at = timezone.now()
        connection.consecutive_failures = 0
        connection.last_error_code = connection.last_error_message = ""
        if refresh_statements.supported():
            refresh_statements.save_refreshed(token, _REFRESHED_TOKEN_FIELDS,
                                              connection, _REFRESHED_CONNECTION_FIELDS)
        else:
            token.save(update_fields=_REFRESHED_TOKEN_FIELDS)
            connection.save(update_fields=_REFRESHED_CONNECTION_FIELDS)
        record(action="provider.token.refreshed", target=connection, actor=connection.user, extra={
            "rotation": rotation, "version": token.token_version, "refresh_count": token.refresh_count,
            "forced": force, "provider": connection.provider_key,
        })
        return RefreshResult("refreshed", connection.status, rotation=rotation, expires_at=token.expires_at)


def _refresh_failed(connection, token, exc: ProviderError, *, stale: bool) -> RefreshResult:
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, ProviderUnavailable):
        # Nothing reached the provider (open circuit or spent budget): not the connection's failure.
        return RefreshResult("failed", connection.status, error_code=exc.code, expires_at=token.expires_at,
                             retryable=True, retry_after=retry_after)
    if stale:
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

    Row-locks the tokens (skip_locked) and marks them warned in the same
    transaction; idempotent. Audits ``provider.token.reauth_warning``.
    """
    now = timezone.now()
    horizon = now + timedelta(hours=settings.PROVIDER_REAUTH_WARNING_HOURS)
    count = 0
    with transaction.atomic():
        tokens = (ProviderToken.objects.select_for_update(skip_locked=True, of=("self",))
                  .select_related("connection", "connection__user")
                  .filter(connection__status=ConnectionStatus.ACTIVE, reauth_warned_at__isnull=True,
                          refresh_expires_at__gt=now, refresh_expires_at__lte=horizon)[:500])
        for token in tokens:
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


def connection_sync(*, connection_id) -> SyncResult:
    """Fetch accounts (with positions) and transactions, and upsert them.

    Provider calls run outside any transaction; the upserts then run in one
    (keyed by account hash and by transaction id per account), so running a sync
    twice changes nothing. Transactions since the last sync (less a day of
    overlap), or PROVIDER_SYNC_HISTORY_DAYS on the first sync. Audits
    ``provider.sync.completed`` or ``provider.sync.failed``.
    """
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
            if result.status != "refreshed":
                raise InvalidGrant("re-authorization required", code=result.error_code or "reauth_required") \
                    from None
            fetched = _fetch(connection, start=start, end=now)
    except crypto.DecryptionError:
        with transaction.atomic():
            _to_reauth(connection, code="decrypt_failed", message="The stored credentials could not be read.",
                       action="provider.token.decrypt_failed")
        return SyncResult("reauth_required", error_code="decrypt_failed")
    except ProviderError as exc:
        connection.refresh_from_db()
        with transaction.atomic():
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
    from django.db.models import Q

    horizon = timezone.now() - timedelta(minutes=settings.PROVIDER_SYNC_MINUTES)
    qs = (ProviderConnection.objects.filter(status=ConnectionStatus.ACTIVE)
          .filter(Q(last_sync_at__isnull=True) | Q(last_sync_at__lte=horizon))
          .order_by("last_sync_at").values_list("pk", flat=True)[:limit])
    return [str(pk) for pk in qs]


def connection_sync_request(*, connection: ProviderConnection) -> None:
    """Enqueue a sync (POST sync). 409 REAUTH_REQUIRED unless the connection is usable;
    503 PROVIDER_UNAVAILABLE while the provider's circuit is open."""
    from providers import breaker

    if connection.status not in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR):
        raise ProblemError("REAUTH_REQUIRED", "Connect this provider again before syncing.")
    allowed = breaker.state(connection.provider_key)
    if allowed.state == breaker.OPEN:
        from dashtam.api.exceptions import RetryAfterError

        raise RetryAfterError("PROVIDER_UNAVAILABLE", "The provider is unavailable. Try again later.",
                              retry_after=allowed.retry_after)
    _enqueue_sync(connection.pk)


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
