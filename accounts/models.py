"""The user: email is the login, stored in its one canonical form (accounts.email_address); UUID primary key."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.email_address import canonical_email

# The name callers have always used: the one canonical form, nothing else.
normalize_email = canonical_email


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        # An exact match on the canonical form: never iexact, which PostgreSQL runs as
        # UPPER() = UPPER() and which let look-alike spellings (ſ, ı) answer for one account.
        return self.get(email=canonical_email(username))

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=canonical_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_verified_at", timezone.now())
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # Token breach rotation: JWTs carrying a lower version are refused (sessions_mgmt).
    min_token_version = models.PositiveIntegerField(default=0)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]
        ordering = ["-date_joined"]
        # Staff powers beyond Django's add/change/delete/view (the admin's actions need them).
        permissions = [
            ("unlock_user", "Can unlock a user's login"),
            ("send_password_reset", "Can send a user a password reset email"),
            ("deactivate_user", "Can deactivate a user"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self):
        super().clean()
        self.email = canonical_email(self.email)

    def save(self, *args, **kwargs):
        # Whatever path writes the address (admin, shell, a factory), it is stored canonical.
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "email" in update_fields:
            self.email = canonical_email(self.email)
        super().save(*args, **kwargs)

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name


class AccountToken(models.Model):
    """A one-time token sent by email: email verification, email change, password reset,
    and the lockout email's "unlock and sign in" link.

    Only the SHA-256 of the token is stored. A token is valid until ``expires_at``
    and until it is used or replaced (``used_at`` / ``revoked_at``).
    """

    class Purpose(models.TextChoices):
        VERIFY_EMAIL = "verify_email", "Verify email"
        CHANGE_EMAIL = "change_email", "Change email"
        RESET_PASSWORD = "reset_password", "Reset password"
        UNLOCK = "unlock", "Unlock and sign in"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_tokens")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    new_email = models.EmailField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "purpose"], name="accounts_token_user_purpose")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} token for {self.user_id}"


# Second factors live in accounts/mfa; imported here so Django registers them with this app.
from accounts.mfa.models import MfaChallenge, RecoveryCode, TotpDevice  # noqa: E402, F401
