"""Request and response shapes of the sessions API."""

from __future__ import annotations

from rest_framework import serializers

from sessions_mgmt.models import Session


class RefreshRequestSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096, trim_whitespace=True)


class RefreshResponseSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class LogoutRequestSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096, trim_whitespace=True,
                                    help_text="A refresh token of the session being ended.")


class SessionSerializer(serializers.ModelSerializer):
    ip_address = serializers.IPAddressField(source="ip", allow_null=True, read_only=True)
    is_current = serializers.SerializerMethodField()
    auth_methods = serializers.ListField(child=serializers.CharField(), read_only=True,
                                         help_text='How the session was signed in, e.g. ["password", "totp"].')

    class Meta:
        model = Session
        fields = ["id", "device", "browser", "os", "ip_address", "location", "created_at",
                  "last_used_at", "expires_at", "is_current", "auth_methods"]
        read_only_fields = fields

    def get_is_current(self, obj: Session) -> bool:
        return str(obj.pk) == str(self.context.get("current_session_id"))


class RevokedCountSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many sessions were ended.")
