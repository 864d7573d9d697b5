"""Login sessions (one refresh-token family each) and the global token-version floor."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class SessionQuerySet(models.QuerySet):
    def active(self, *, now=None):
        """Not revoked and not past the absolute maximum age (as configured now)."""
        now = now or timezone.now()
        return self.filter(
            revoked_at__isnull=True, expires_at__gt=now,
            created_at__gt=now - timedelta(seconds=settings.SESSION_MAX_AGE),
        )


class Session(models.Model):
    """One login: the family of refresh tokens that descend from it.

    Only the newest refresh token of the family (``refresh_jti``) may be
    exchanged; ``previous_refresh_jti`` and ``rotated_at`` let a replay of the
    one before it be recognised as reuse (theft) rather than as garbage.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_sessions")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    device = models.CharField(max_length=64, blank=True)
    browser = models.CharField(max_length=64, blank=True)
    os = models.CharField(max_length=64, blank=True)
    location = models.CharField(max_length=128, default="Unknown")
    refresh_jti = models.CharField(max_length=64, unique=True)
    previous_refresh_jti = models.CharField(max_length=64, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # How this login was proven: ["password"], ["password", "totp"], ["password", "recovery_code"].
    auth_methods = models.JSONField(default=list, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_used_at"]
        permissions = [("revoke_session", "Can revoke login sessions and every token of their users")]
        indexes = [
            models.Index(fields=["user", "-last_used_at"], name="session_user_activity"),
            models.Index(fields=["revoked_at"], name="session_revoked_at",
                         condition=Q(revoked_at__isnull=False)),
            models.Index(fields=["expires_at"], name="session_expires_at"),
        ]

    def __str__(self) -> str:
        return f"{self.browser or 'Unknown browser'} on {self.os or 'unknown OS'} ({self.id})"

    @property
    def effective_expires_at(self):
        """``expires_at``, or earlier when SESSION_MAX_AGE was lowered since the login."""
        return effective_expiry(created_at=self.created_at, expires_at=self.expires_at)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.effective_expires_at > timezone.now()


def effective_expiry(*, created_at, expires_at):
    return min(expires_at, created_at + timedelta(seconds=settings.SESSION_MAX_AGE))


class SecurityConfig(models.Model):
    """A single row: the global minimum token version (breach rotation for everyone)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    min_token_version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "security configuration"
        verbose_name_plural = "security configuration"

    def __str__(self) -> str:
        return f"Global minimum token version {self.min_token_version}"

    @classmethod
    def load(cls) -> SecurityConfig:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
