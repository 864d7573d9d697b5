"""Login sessions (one refresh-token family each) and the global token-version floor."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Exists, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from dashtam.db.statements import Table

# --- The liveness rule ---------------------------------------------------------------------
# A token of session S, user U and version V works while
#   S is not revoked,
#   S has not expired: ``expires_at``, or ``created_at`` + SESSION_MAX_AGE when that is sooner
#     (SESSION_MAX_AGE as configured now, so lowering it shortens every session),
#   U is active,
#   V >= max(U.min_token_version, the global minimum token version).
# This is its one definition. It has three renderings, which tests hold equal
# (tests/sessions/test_liveness.py):
#   - the ORM filter: ``Session.objects.active()`` (the session part: lists, bulk revocation,
#     the admin) and ``Session.objects.usable_by_token()`` (the whole rule);
#   - the Python verdict on rows already read: ``refusal()`` (the authentication class,
#     the refresh's locked path) and ``Session.is_active``;
#   - the SQL fragment ``token_live_sql()`` that the one-statement rotation embeds.

REVOKED, EXPIRED, INACTIVE, STALE_VERSION = "revoked", "expired", "inactive", "stale_version"


def born_after(now):
    """Sessions created at or before this moment are past SESSION_MAX_AGE at ``now``."""
    return now - timedelta(seconds=settings.SESSION_MAX_AGE)


def effective_expiry(*, created_at, expires_at):
    return min(expires_at, created_at + timedelta(seconds=settings.SESSION_MAX_AGE))


def version_floor(*, user_min: int | None, global_min: int | None) -> int:
    """The lowest token version still accepted for a user."""
    return max(user_min or 0, global_min or 0)


def refusal(*, revoked: bool, expires_at, now, user_active: bool, version: int,
            user_min: int | None, global_min: int | None) -> str | None:
    """Which part of the rule a token fails, checked in this order, or None when it works.

    ``expires_at`` is the session's effective expiry (``effective_expiry``), compared
    with ``now`` in the same unit (datetimes, or epoch seconds). Returns REVOKED,
    EXPIRED, INACTIVE or STALE_VERSION; each caller maps them to its own answer.
    """
    if revoked:
        return REVOKED
    if expires_at <= now:
        return EXPIRED
    if not user_active:
        return INACTIVE
    if version < version_floor(user_min=user_min, global_min=global_min):
        return STALE_VERSION
    return None


def live_q(*, now) -> Q:
    """The session part of the rule as a filter on sessions: not revoked, not expired at ``now``."""
    return Q(revoked_at__isnull=True, expires_at__gt=now, created_at__gt=born_after(now))


def token_live_q(*, version: int, now) -> Q:
    """The whole rule as a filter on sessions, for a token of ``version``."""
    return (live_q(now=now) & Q(user__is_active=True, user__min_token_version__lte=version)
            & ~Exists(SecurityConfig.objects.filter(pk=SecurityConfig.ROW, min_token_version__gt=version)))


def token_live_sql(*, session: Table, user: Table, config: Table, version: str, now: str, born_after: str) -> str:
    """``token_live_q`` written out for a hand-written statement that joins ``session`` to
    ``user``; ``version``, ``now`` and ``born_after`` are the statement's parameter
    placeholders (``born_after`` is ``born_after(now)``)."""
    return (
        f"{session.revoked_at} IS NULL AND {session.expires_at} > {now} AND {session.created_at} > {born_after} "
        f"AND {user.is_active} AND {user.min_token_version} <= {version} "
        f"AND {global_min_version_sql(config)} <= {version}"
    )


class SessionQuerySet(models.QuerySet):
    def active(self, *, now=None):
        """Not revoked and not past the absolute maximum age (as configured now)."""
        return self.filter(live_q(now=now or timezone.now()))

    def ended(self, *, now=None):
        """Not revoked, but expired: past ``expires_at`` or SESSION_MAX_AGE."""
        return self.filter(revoked_at__isnull=True).exclude(live_q(now=now or timezone.now()))

    def usable_by_token(self, *, version: int, now=None):
        """The sessions a token of ``version`` may still use (the whole rule)."""
        return self.filter(token_live_q(version=version, now=now or timezone.now()))


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
        """The session part of the liveness rule, at this moment."""
        return self.revoked_at is None and self.effective_expires_at > timezone.now()


class SecurityConfig(models.Model):
    """A single row: the global minimum token version (breach rotation for everyone).

    Read it through ``global_min_version()`` (or, inside a larger statement,
    ``global_min_version_expression()`` / ``global_min_version_sql()``).
    """

    ROW = 1

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
        obj, _ = cls.objects.get_or_create(pk=cls.ROW)
        return obj


# --- The global minimum token version: its one reader ---------------------------------------
# 0 before anyone was ever revoked (no row yet). The ORM expression and the SQL fragment
# read the same row, for statements that fetch it together with other rows.
def global_min_version() -> int:
    """The global minimum token version (raised by ``tokens_revoke_all``); 0 when never raised."""
    value = (SecurityConfig.objects.filter(pk=SecurityConfig.ROW)
             .values_list("min_token_version", flat=True).first())
    return value or 0


def global_min_version_expression() -> Coalesce:
    """``global_min_version()`` as an expression, to annotate onto another query."""
    row = SecurityConfig.objects.filter(pk=SecurityConfig.ROW).values("min_token_version")[:1]
    return Coalesce(Subquery(row), Value(0), output_field=models.IntegerField())


def global_min_version_sql(config: Table) -> str:
    """``global_min_version()`` as a scalar subquery for a hand-written statement; ``config``
    is ``SecurityConfig``'s table under an alias the statement does not use otherwise."""
    # Identifiers from the model's metadata, quoted; the row id is this class's integer constant.
    return (f"COALESCE((SELECT {config.min_token_version} FROM {config.ref} "  # noqa: S608  # nosec B608
            f"WHERE {config.pk} = {SecurityConfig.ROW:d}), 0)")
