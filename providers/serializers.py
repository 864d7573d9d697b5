"""Shapes of the providers API. Never a token, in or out."""

from __future__ import annotations

import re
from datetime import date

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from providers.models import FinancialAccount, ProviderConnection, Transaction


class TextField(serializers.CharField):
    """A CharField that refuses numbers and other non-strings instead of converting them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProviderTypeSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    configured = serializers.BooleanField()
    capabilities = serializers.ListField(child=serializers.CharField())


class ConnectionSerializer(serializers.ModelSerializer):
    expires_at = serializers.SerializerMethodField()
    refresh_expires_at = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = ProviderConnection
        fields = ["id", "provider_key", "alias", "status", "created_at", "connected_at", "last_refreshed_at",
                  "last_sync_at", "consecutive_failures", "last_error", "expires_at", "refresh_expires_at"]

    def _token(self, obj):
        try:
            return obj.token
        except ProviderConnection.token.RelatedObjectDoesNotExist:
            return None

    def get_expires_at(self, obj) -> str | None:
        token = self._token(obj)
        return serializers.DateTimeField().to_representation(token.expires_at) if token else None

    def get_refresh_expires_at(self, obj) -> str | None:
        token = self._token(obj)
        if token is None or token.refresh_expires_at is None:
            return None
        return serializers.DateTimeField().to_representation(token.refresh_expires_at)

    def get_last_error(self, obj) -> dict | None:
        if not obj.last_error_code:
            return None
        return {"code": obj.last_error_code, "message": obj.last_error_message}


@extend_schema_serializer(examples=[OpenApiExample(
    "The sandbox (no credentials needed)", request_only=True, value={"provider_key": "sandbox", "alias": "Play money"})])
class ConnectionCreateSerializer(serializers.Serializer):
    provider_key = serializers.ChoiceField(choices=[], error_messages={"invalid_choice": "Unknown provider."},
                                           help_text="One of the provider types' keys (GET provider-types).")
    alias = TextField(max_length=100, required=False, allow_blank=False, trim_whitespace=True,
                                  help_text="Unique among your connections; defaults to the provider's name.")

    def __init__(self, *args, **kwargs):
        from providers import registry

        super().__init__(*args, **kwargs)
        # The registered providers, read when used (the sandbox is off in production).
        self.fields["provider_key"].choices = [t.key for t in registry.provider_types()]


class ConnectionCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    provider_key = serializers.CharField()
    alias = serializers.CharField()
    status = serializers.CharField()
    authorization_url = serializers.URLField()


class ConnectionUpdateSerializer(serializers.Serializer):
    alias = TextField(max_length=100, allow_blank=False, trim_whitespace=True)


class AuthorizationUrlSerializer(serializers.Serializer):
    authorization_url = serializers.URLField()


class TokenRefreshResultSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="The connection's status after the refresh.")
    expires_at = serializers.DateTimeField(allow_null=True)
    rotation = serializers.ChoiceField(
        choices=["rotated", "same_token_returned", "not_included"],
        help_text="What the provider did with the refresh token; same_token_returned when the token was "
                  "still fresh and the provider was not called (refreshed: false).")
    refreshed = serializers.BooleanField(
        help_text="False when the token was obtained less than PROVIDER_TOKEN_FRESH_SECONDS ago: the answer "
                  "is the stored state and the provider was not called.")


class SyncAcceptedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["queued", "completed"],
        help_text="queued: the job waits or runs; completed: it finished moments ago, so none was queued.")
    connection_id = serializers.UUIDField()
    job_id = serializers.UUIDField()
    created = serializers.BooleanField(help_text="False when an existing job answers this request.")
    requested_at = serializers.DateTimeField(allow_null=True)
    last_sync_at = serializers.DateTimeField(allow_null=True)


class OAuthCompleteSerializer(serializers.Serializer):
    state = serializers.CharField(max_length=512, help_text="The `state` the callback passed to the front end.")
    code = serializers.CharField(max_length=4096, required=False, allow_blank=True,
                                 help_text="The authorization code the callback passed on.")
    error = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                  help_text="The provider's error instead of a code, e.g. access_denied. "
                                            "When both are sent, the error wins (as at the callback).")

    def validate(self, attrs):
        if not attrs.get("code") and not attrs.get("error"):
            raise serializers.ValidationError({"code": ["Send the code, or the error, that the callback passed on."]})
        if attrs.get("error"):
            attrs["code"] = ""
        return attrs


class CallbackResultSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["connected", "denied", "invalid_state", "expired", "replayed", "mismatch", "failed"])
    connection_id = serializers.UUIDField(allow_null=True)
    detail = serializers.CharField()


class AccountSerializer(serializers.ModelSerializer):
    connection_id = serializers.UUIDField(read_only=True)
    provider_key = serializers.CharField(source="connection.provider_key", read_only=True)

    class Meta:
        model = FinancialAccount
        fields = ["id", "connection_id", "provider_key", "account_number_masked", "account_type", "currency",
                  "cash_balance", "market_value", "total_value", "positions", "synced_at", "created_at"]


class TransactionSerializer(serializers.ModelSerializer):
    account_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Transaction
        fields = ["id", "account_id", "provider_transaction_id", "type", "date", "description", "amount",
                  "currency", "symbol"]


class DateOrDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a bare date (the start of that day, or its end with ``end_of_day``)."""

    # Years 1900 to 9998, as the schema's pattern says (checked on the text as sent).
    EARLIEST = date(1900, 1, 1)
    LATEST = date(9998, 12, 31)
    YEARS = r"^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        from datetime import datetime, time

        from django.utils import timezone
        from django.utils.dateparse import parse_date

        if isinstance(value, str) and not re.match(self.YEARS, value):
            # Far outside any brokerage history, and near the edges of what datetime (and the
            # database) can hold once an offset moves it to UTC: the schema's pattern, enforced.
            raise serializers.ValidationError(
                f"Must be between {self.EARLIEST.isoformat()} and {self.LATEST.isoformat()}"
                " (YYYY-MM-DD or an ISO 8601 date-time).")
        try:
            day = parse_date(value) if isinstance(value, str) and len(value) == 10 else None
        except ValueError:  # well formed but impossible: 2024-02-30, 2024-13-01, 0000-01-01
            self.fail("invalid", format="YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][+HH:MM|Z]")
        if day is not None:
            moment = datetime.combine(day, time.max if self.end_of_day else time.min)
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
        else:
            moment = super().to_internal_value(value)
        return moment

    def openapi_schema(self) -> dict:
        from dashtam.api.schema import DATE_OR_DATE_TIME

        return dict(DATE_OR_DATE_TIME, pattern=self.YEARS,
                    description=(self.help_text or DATE_OR_DATE_TIME["description"])
                    + f" Between {self.EARLIEST.isoformat()} and {self.LATEST.isoformat()}.")


# Other spellings clients use for the same filters.
FILTER_ALIASES = {"start_date": "start", "date_from": "start", "from": "start",
                  "end_date": "end", "date_to": "end", "to": "end", "types": "type"}


def normalise_filters(params) -> dict:
    data = {}
    for key, value in params.items():
        data.setdefault(FILTER_ALIASES.get(key, key), value)
    return data


class TransactionFilterSerializer(serializers.Serializer):
    start = DateOrDateTimeField(required=False,
                                help_text="Only transactions on or after (ISO 8601 date or date-time).")
    end = DateOrDateTimeField(required=False, end_of_day=True,
                              help_text="Only transactions on or before (ISO 8601 date or date-time).")
    type = serializers.CharField(required=False, help_text="Comma-separated types, e.g. TRADE,DIVIDEND_OR_INTEREST.")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": ["end must not be before start."]})
        return attrs


class AccountFilterSerializer(serializers.Serializer):
    connection_id = serializers.UUIDField(required=False, help_text="Only this connection's accounts.")
    type = serializers.CharField(required=False, help_text="Account type, e.g. MARGIN or CASH.")
    synced_since = serializers.DateTimeField(required=False, help_text="Only accounts synced since (ISO 8601).")
