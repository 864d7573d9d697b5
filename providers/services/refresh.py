"""Token refresh: exactly once however many callers race, with no lock held while the
provider answers; the warning email before a refresh token dies.

Every state change is audited inside the same transaction. Token plaintext exists only
in local variables here (see ``keys``).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.services import record
from dashtam import crypto
from providers import refresh_statements, selectors
from providers.clients.base import TokenResponse
from providers.exceptions import InvalidGrant, ProviderError, ProviderUnavailable
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from providers.services._common import _USABLE, _client, _email, _lock_connection, _set_error, _user_key_share
from providers.services.keys import _refresh_plaintext, _seal

logger = logging.getLogger("dashtam.providers")

ROTATED, SAME, NOT_INCLUDED = "rotated", "same_token_returned", "not_included"


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


def _reauth_and_release(claim: _Claim, *, code: str, message: str, action: str) -> RefreshResult:
    """The connection needs its user to connect again (``code``): marked so under its lock,
    the lease given back, ``reauth_required`` returned."""
    def write(locked: ProviderConnection) -> RefreshResult:
        _to_reauth(locked, code=code, message=message, action=action)
        _lease_release(claim)
        return RefreshResult("reauth_required", locked.status, error_code=code)
    return _write_or_release(claim, write)


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
        return _reauth_and_release(claim, code="decrypt_failed", action="provider.token.decrypt_failed",
                                   message="The stored credentials could not be read.")
    if not old_refresh:
        return _reauth_and_release(claim, code="no_refresh_token", action="provider.token.reauth_required",
                                   message="No refresh token is stored.")
    try:
        response = _client(connection).refresh(refresh_token=old_refresh)
    except InvalidGrant:
        return _reauth_and_release(claim, code="invalid_grant", action="provider.token.reauth_required",
                                   message="The provider refused the refresh token.")
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


def _enqueue_refresh(connection_id, *, force: bool = False) -> None:
    from dashtam.outbox.services import enqueue
    from providers.tasks import refresh_connection_token

    enqueue(refresh_connection_token, str(connection_id), force=force)


def tokens_reauth_warn() -> int:
    """Email each user once, PROVIDER_REAUTH_WARNING_HOURS before a refresh token dies.

    One short transaction per token: the user's KEY SHARE lock, then the token's row lock
    (skip_locked: a token another run holds is left to it), re-checked and marked warned
    with its audit row and email; idempotent. Audits ``provider.token.reauth_warning``.
    """
    now = timezone.now()
    due_tokens = selectors.tokens_due_for_reauth_warning(now=now)
    due = dict(due_tokens.values_list("pk", "connection__user_id")[:500])
    count = 0
    for token_id, user_id in due.items():
        with transaction.atomic():
            _user_key_share(user_id)  # the lock order of every provider write: user, connection, token
            # Locked, then re-checked against the same due-list: another run may have warned it.
            token = (due_tokens.select_for_update(skip_locked=True, of=("self",))
                     .select_related("connection", "connection__user")
                     .filter(pk=token_id).first())
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
