"""Input and output shapes of the accounts API. Parsing only: rules live in services."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from accounts.email_address import MAX_LENGTH as EMAIL_MAX_LENGTH
from accounts.email_address import canonical_email, new_email_problem
from accounts.names import NAME_RULE, name_problems
from accounts.tokens import TOKEN_MAX_LENGTH
from accounts.validators import MAX_LENGTH as PASSWORD_MAX_LENGTH

# Passwords longer than this are refused before any policy check or hashing.
PASSWORD_INPUT_LIMIT = 1024


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and other non-strings instead of converting them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PasswordField(StrictCharField):
    """Exactly as typed: never trimmed, truncated or case-folded."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)


class NewPasswordField(PasswordField):
    """A password being chosen. Its OpenAPI schema states the policy, so that clients (and
    generated test bodies) can meet it: the length limits and, under
    PASSWORD_POLICY=composition, the four character classes, written with ASCII classes
    (and a printable ASCII symbol or space) so that any value the pattern allows passes
    the policy. The common-password and similarity checks cannot be written as a schema.
    """

    COMPOSITION_PATTERN = (
        r"^(?=[\s\S]*[a-z])(?=[\s\S]*[A-Z])(?=[\s\S]*[0-9])(?=[\s\S]*[ -/:-@\[-`{-~])[\s\S]*$"
    )

    def openapi_schema(self) -> dict:
        from accounts.validators import MAX_LENGTH

        if settings.PASSWORD_POLICY == "nist":
            return {"minLength": 15, "maxLength": MAX_LENGTH, "description": (
                "At least 15 characters, any Unicode including spaces; not a common password "
                "and not too similar to your email or name.")}
        return {"minLength": 8, "maxLength": MAX_LENGTH, "pattern": self.COMPOSITION_PATTERN, "description": (
            "8 to 128 characters with an upper-case letter, a lower-case letter, a digit and a "
            "special character; not a common password and not too similar to your email or name.")}


class NameField(StrictCharField):
    """A first or last name: plain single-line text, no URL or email address (accounts/names.py)."""

    def __init__(self, **kwargs):
        # For the schema; name_problems reads ACCOUNT_NAME_MAX_LENGTH again at request time.
        kwargs.setdefault("max_length", min(settings.ACCOUNT_NAME_MAX_LENGTH, 150))
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("help_text", NAME_RULE)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problems = name_problems(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value


class StrictEmailField(serializers.EmailField):
    """An address as typed, returned in its canonical form (``accounts.email_address``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        email = canonical_email(super().to_internal_value(data))
        if len(email) > EMAIL_MAX_LENGTH:
            # NFKC and punycode can lengthen an address: no account can have this one.
            raise serializers.ValidationError(f"Ensure this field has no more than {EMAIL_MAX_LENGTH} characters.")
        return email


class NewEmailField(StrictEmailField):
    """An address that is to become an account's: its local part must be plain ASCII."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            problem = new_email_problem(data) if "@" in data else None
            if problem:
                raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


@extend_schema_serializer(examples=[OpenApiExample(
    "A new account", request_only=True,
    value={"email": "new.user@example.com", "password": "Correct-Horse-9!", "first_name": "Ada"})])
class RegisterSerializer(serializers.Serializer):
    email = NewEmailField()
    password = NewPasswordField(max_length=PASSWORD_INPUT_LIMIT)
    first_name = NameField(required=False, default="")
    last_name = NameField(required=False, default="")


class EmailSerializer(serializers.Serializer):
    email = StrictEmailField()


# Emailed tokens are URL-safe base64 (secrets.token_urlsafe).
TOKEN_VALIDATORS = [RegexValidator(r"^[A-Za-z0-9_-]+\Z", "The link is invalid or has expired.")]


class TokenSerializer(serializers.Serializer):
    token = StrictCharField(max_length=TOKEN_MAX_LENGTH, validators=TOKEN_VALIDATORS)


@extend_schema_serializer(examples=[OpenApiExample(
    "The demo user (make run)", request_only=True,
    value={"email": "demo@dashtam.local", "password": "Demo-Passw0rd!"})])
class LoginSerializer(serializers.Serializer):
    email = StrictEmailField()
    password = PasswordField(max_length=PASSWORD_MAX_LENGTH)


class ResetPasswordSerializer(serializers.Serializer):
    token = StrictCharField(max_length=TOKEN_MAX_LENGTH, validators=TOKEN_VALIDATORS)
    new_password = NewPasswordField(max_length=PASSWORD_INPUT_LIMIT)


class ChangePasswordSerializer(serializers.Serializer):
    current_password = PasswordField(max_length=PASSWORD_INPUT_LIMIT)
    new_password = NewPasswordField(max_length=PASSWORD_INPUT_LIMIT)


class DeactivateSerializer(serializers.Serializer):
    password = PasswordField(max_length=PASSWORD_INPUT_LIMIT)


class MeUpdateSerializer(serializers.Serializer):
    """Names, and an email change (which needs ``current_password``). Other fields are ignored."""

    first_name = NameField(required=False)
    last_name = NameField(required=False)
    email = NewEmailField(required=False)
    current_password = PasswordField(max_length=PASSWORD_INPUT_LIMIT, required=False)

    def validate(self, attrs):
        if "email" in attrs and not attrs.get("current_password"):
            raise serializers.ValidationError(
                {"current_password": ["Your current password is required to change your email address."]})
        return attrs


class UserSerializer(serializers.Serializer):
    """The user as the API shows it (read-only).

    Declared field by field rather than as a ModelSerializer: this runs on every
    GET auth/me, and a ModelSerializer rebuilds its fields from the model for each
    instance (about 0.15 ms of CPU per request; see docs/performance.md). For the
    same reason ``to_representation`` formats with the declared fields themselves
    instead of DRF's per-instance deep copy of them (another 0.1 ms).
    """

    id = serializers.UUIDField(read_only=True)
    email = serializers.EmailField(read_only=True, max_length=254)
    first_name = serializers.CharField(read_only=True, max_length=150)
    last_name = serializers.CharField(read_only=True, max_length=150)
    email_verified = serializers.BooleanField(source="is_verified", read_only=True)
    email_verified_at = serializers.DateTimeField(read_only=True, allow_null=True)
    date_joined = serializers.DateTimeField(read_only=True)
    last_login = serializers.DateTimeField(read_only=True, allow_null=True)

    def to_representation(self, instance):
        # Flat, read-only fields with plain attribute sources: each value is formatted by its
        # declared field exactly as DRF would (tests compare both), the fields are not copied.
        out = {}
        for name, field in self._declared_fields.items():
            value = getattr(instance, field.source or name)
            out[name] = None if value is None else field.to_representation(value)
        return out


class LoginResponseSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    session_id = serializers.UUIDField()
    user = UserSerializer()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
