"""Input and output shapes of the second-factor API. Parsing only: rules live in accounts.mfa.services."""

from __future__ import annotations

from rest_framework import serializers

from accounts.passkeys.serializers import CredentialField
from accounts.serializers import PASSWORD_INPUT_LIMIT, PasswordField, StrictCharField


class CodeField(StrictCharField):
    """A 6-digit TOTP code or a recovery code (dashes and case ignored); never echoed back."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("write_only", True)
        super().__init__(**kwargs)


class MfaLoginSerializer(serializers.Serializer):
    mfa_token = StrictCharField(max_length=256, help_text="From the mfa_required answer of POST auth/login.")
    code = CodeField(required=False, help_text="A 6-digit code from the authenticator app, or a recovery code.")
    passkey = CredentialField(required=False, help_text="Instead of a code: a passkey assertion (its "
                                                        "options from POST auth/passkeys/authentication/options "
                                                        "{mfa_token}).")

    def validate(self, attrs):
        if ("code" in attrs) == ("passkey" in attrs):
            raise serializers.ValidationError({"code": ["Send a code or a passkey."]})
        return attrs


class MfaRequiredSerializer(serializers.Serializer):
    mfa_required = serializers.BooleanField(default=True)
    mfa_token = serializers.CharField(help_text="Opaque, single-use; bound to this client.")
    methods = serializers.ListField(child=serializers.CharField(),
                                    help_text='What can finish the login: "totp", "recovery_code", "passkey".')
    expires_in = serializers.IntegerField(help_text="Seconds the mfa_token stays valid.")


class PasswordSerializer(serializers.Serializer):
    password = PasswordField(max_length=PASSWORD_INPUT_LIMIT)


class TotpEnrolResponseSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The base32 seed, for typing into an authenticator app.")
    otpauth_uri = serializers.CharField()
    qr_svg = serializers.CharField(help_text="The otpauth URI as an inline SVG QR code.")


class TotpConfirmSerializer(serializers.Serializer):
    code = CodeField(max_length=16)
    end_other_sessions = serializers.BooleanField(required=False, default=False)


class TotpDisableSerializer(serializers.Serializer):
    password = PasswordField(max_length=PASSWORD_INPUT_LIMIT)
    code = CodeField()
    end_other_sessions = serializers.BooleanField(required=False, default=False)


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(child=serializers.CharField(),
                                           help_text="Shown once; each works once. Store them safely.")


class _TotpStatus(serializers.Serializer):
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)


class _RecoveryStatus(serializers.Serializer):
    remaining = serializers.IntegerField()


class MfaStatusSerializer(serializers.Serializer):
    totp = _TotpStatus()
    recovery_codes = _RecoveryStatus()
    passkeys = serializers.IntegerField()
