"""Input and output shapes of the passkeys API (parsing only; rules live in services)."""

from __future__ import annotations

from rest_framework import serializers

from accounts.serializers import PASSWORD_INPUT_LIMIT, PasswordField, StrictCharField, StrictEmailField


class CredentialField(serializers.JSONField):
    """A PublicKeyCredential as its toJSON() form: a JSON object, checked by py_webauthn."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return super().to_internal_value(data)

    default_error_messages = {"invalid": "Send the credential as a JSON object (PublicKeyCredential.toJSON())."}


class PasskeySerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    backed_up = serializers.BooleanField(read_only=True)


class RegistrationSerializer(serializers.Serializer):
    credential = CredentialField()
    name = StrictCharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False)


class RenameSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, trim_whitespace=False)


class DeleteSerializer(serializers.Serializer):
    password = PasswordField(max_length=PASSWORD_INPUT_LIMIT, required=False)
    passkey = CredentialField(required=False, help_text="For an account without a password: a fresh "
                                                        "assertion (options from authentication/options).")


class AuthenticationOptionsSerializer(serializers.Serializer):
    email = StrictEmailField(required=False)
    mfa_token = StrictCharField(max_length=256, required=False)

    def validate(self, attrs):
        if "email" in attrs and "mfa_token" in attrs:
            raise serializers.ValidationError({"mfa_token": ["Send an email or an mfa_token, not both."]})
        return attrs


class AuthenticationSerializer(serializers.Serializer):
    credential = CredentialField()
