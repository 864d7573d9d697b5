"""Provider connections, their encrypted tokens, OAuth states, and the synced data.

Token plaintext never lives on a model: ``ProviderToken`` holds ciphertext only
(``dashtam.crypto``), and the column values carry the key id they were sealed
with and are bound to the row's id, so a ciphertext copied to another row fails.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ConnectionStatus(models.TextChoices):
    PENDING = "pending", "Pending authorization"
    ACTIVE = "active", "Active"
    REAUTH_REQUIRED = "reauth_required", "Re-authorization required"
    ERROR = "error", "Error"
    REVOKED = "revoked", "Revoked"


class ProviderConnection(models.Model):
    """One user's link to one brokerage login at a provider."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="provider_connections")
    provider_key = models.CharField(max_length=32)
    alias = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=ConnectionStatus.choices,
                              default=ConnectionStatus.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error_code = models.CharField(max_length=64, blank=True, default="")
    last_error_message = models.CharField(max_length=255, blank=True, default="")
    # Breach rotation: tokens whose version is below this are refreshed or, failing
    # that, the connection goes to reauth_required.
    min_token_version = models.PositiveIntegerField(default=1)
    # The latest sync job (POST sync, beat, first sync after connecting): a sync asked for while
    # one is queued, or shortly after one ran, answers with this job instead of queueing another.
    sync_job_id = models.UUIDField(null=True, blank=True)
    sync_requested_at = models.DateTimeField(null=True, blank=True)  # set while the job is queued or running

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "alias"], name="providers_unique_alias_per_user"),
        ]
        indexes = [models.Index(fields=["user", "-created_at"])]
        permissions = [
            ("refresh_connection", "Can force a connection's token refresh"),
            ("rotate_connection_tokens", "Can replace the tokens of connections (breach rotation)"),
            ("revoke_connection", "Can revoke a brokerage connection"),
        ]

    def __str__(self) -> str:
        return f"{self.alias} ({self.provider_key})"


class ProviderToken(models.Model):
    """The encrypted OAuth tokens of one connection (one row per connection).

    The id is a UUID known before the first save, because it is the associated
    data of both ciphertexts.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.OneToOneField(ProviderConnection, on_delete=models.CASCADE, related_name="token")
    access_token_encrypted = models.TextField()
    refresh_token_encrypted = models.TextField(blank=True, default="")
    expires_at = models.DateTimeField(db_index=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    scope = models.CharField(max_length=255, blank=True, default="")
    key_id = models.CharField(max_length=32, db_index=True)
    token_version = models.PositiveIntegerField(default=1)
    refresh_count = models.PositiveIntegerField(default=0)
    reauth_warned_at = models.DateTimeField(null=True, blank=True)
    # A refresh in flight: the caller that set the lease calls the provider with no row lock held,
    # then writes the answer only while the lease is still its own (services.token_refresh).
    refresh_lease_id = models.UUIDField(null=True, blank=True)
    refresh_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"tokens of {self.connection_id} (v{self.token_version}, key {self.key_id})"


class OAuthState(models.Model):
    """A pending authorization: only the SHA-256 of the state is stored.

    Single-use (``used_at``), bound to the user and the connection, valid until
    ``expires_at``. The PKCE verifier is encrypted with this row's id as
    associated data.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    state_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="oauth_states")
    provider_key = models.CharField(max_length=32)
    code_verifier_encrypted = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"OAuth state for {self.connection_id}"


class FinancialAccount(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="accounts")
    provider_account_hash = models.CharField(max_length=128)
    account_number_masked = models.CharField(max_length=32)
    account_type = models.CharField(max_length=32, blank=True, default="")
    currency = models.CharField(max_length=3, default="USD")
    cash_balance = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    market_value = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    total_value = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    positions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "provider_account_hash"],
                                    name="providers_unique_account_per_connection"),
        ]

    def __str__(self) -> str:
        return f"{self.account_type} {self.account_number_masked}"


class Transaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(FinancialAccount, on_delete=models.CASCADE, related_name="transactions")
    provider_transaction_id = models.CharField(max_length=128)
    type = models.CharField(max_length=64, db_index=True)
    date = models.DateTimeField(db_index=True)
    description = models.CharField(max_length=255, blank=True, default="")
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")
    symbol = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "provider_transaction_id"],
                                    name="providers_unique_transaction_per_account"),
        ]
        indexes = [models.Index(fields=["account", "-date"])]

    def __str__(self) -> str:
        return f"{self.type} {self.amount} {self.currency} on {self.date:%Y-%m-%d}"

