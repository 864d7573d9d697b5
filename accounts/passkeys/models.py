"""A passkey: one WebAuthn credential registered to one user.

The public key is not a secret; the private key never leaves the authenticator.
The credential id is stored base64url-encoded (as browsers send it) and is unique
across all users: an authenticator cannot register one credential to two accounts.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Passkey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=64)
    credential_id = models.CharField(max_length=1400, unique=True)  # base64url, at most 1023 bytes
    public_key = models.BinaryField()  # COSE_Key, as verified at registration
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    aaguid = models.CharField(max_length=36, blank=True)
    backup_eligible = models.BooleanField(default=False)
    backed_up = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="passkeys_user_created")]

    def __str__(self) -> str:
        return f"Passkey {self.name!r} of {self.user_id}"
