"""Second factors: TOTP devices, recovery codes and the login step's challenges.

Registered with the ``accounts`` app (``accounts/models.py`` imports this module).
Nothing here holds a secret in clear: a TOTP seed is sealed with AES-256-GCM
(FIELD_ENCRYPTION_KEYS, bound to its row), a recovery code and an mfa_token are
stored as SHA-256 digests only.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TotpDevice(models.Model):
    """An authenticator app (RFC 6238, SHA-1, 6 digits, 30 s steps).

    A user has at most one confirmed device and at most one pending one (enrolment
    started, not yet proven with a code). ``last_used_step`` is the newest time step
    accepted, so a code is accepted once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_devices")
    # ``<kid>.<base64url(nonce || ciphertext || tag)>``; associated data: the row id and user id.
    secret_encrypted = models.TextField()
    key_id = models.CharField(max_length=32, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_step = models.BigIntegerField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "accounts"
        verbose_name = "TOTP device"
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(confirmed_at__isnull=False),
                                    name="accounts_totp_one_confirmed"),
            models.UniqueConstraint(fields=["user"], condition=Q(confirmed_at__isnull=True),
                                    name="accounts_totp_one_pending"),
        ]

    def __str__(self) -> str:
        return f"TOTP device {self.id} ({'confirmed' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as the SHA-256 of the user id and the code.

    The codes carry 80 random bits, so a digest cannot be reversed by trying codes.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "accounts"
        indexes = [models.Index(fields=["user"], condition=Q(used_at__isnull=True),
                                name="accounts_recovery_unused")]

    def __str__(self) -> str:
        return f"Recovery code {self.id} ({'used' if self.used_at else 'unused'})"


class MfaChallenge(models.Model):
    """A login waiting for its second factor: what the ``mfa_token`` stands for.

    Only the token's SHA-256 is stored. It is bound to the user, the client's network
    and user agent, lives MFA_TOKEN_SECONDS, is spent by a completed sign-in
    (``used_at``) and dies after MFA_TOKEN_MAX_FAILURES wrong codes.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mfa_challenges")
    token_hash = models.CharField(max_length=64, unique=True)
    # The factors already proven (["password"]; a magic link would say so).
    methods_done = models.JSONField(default=list)
    ip_network = models.CharField(max_length=64, blank=True)
    user_agent_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)

    class Meta:
        app_label = "accounts"

    def __str__(self) -> str:
        return f"Login step {self.id}"
