"""Shapes of the staff audit API."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from rest_framework import serializers

from audit.catalogue import CATALOGUE
from audit.models import AuditEvent, Outcome


class _Bound(serializers.CharField):
    """A date (a whole UTC day) or an ISO 8601 date-time."""

    def __init__(self, *, end: bool, **kwargs):
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        from django.utils.dateparse import parse_date, parse_datetime

        text = super().to_internal_value(data).strip()
        try:
            moment = parse_datetime(text)
            day = None if moment else parse_date(text)
        except ValueError:
            moment = day = None
        try:
            if moment is not None:
                # In UTC: PostgreSQL refuses offsets beyond +-15:59 that ISO 8601 allows.
                return (moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)).astimezone(UTC)
            if day is None:
                raise serializers.ValidationError("Use YYYY-MM-DD or an ISO 8601 date-time.")
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if self.end else start
        except OverflowError:
            raise serializers.ValidationError("This date is out of range.") from None

    def openapi_schema(self) -> dict:
        from dashtam.api.schema import DATE_OR_DATE_TIME

        return dict(DATE_OR_DATE_TIME, description=self.help_text or DATE_OR_DATE_TIME["description"])


class AuditEventFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/admin/audit/events (the admin's filters)."""

    action = serializers.ChoiceField(choices=sorted(CATALOGUE), required=False,
                                     help_text="An action code from the catalogue.")
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False)
    created_from = _Bound(end=False, required=False,
                          help_text="Events at or after this date (UTC day) or date-time.")
    created_to = _Bound(end=True, required=False,
                        help_text="Events up to this date (inclusive, UTC day) or before this date-time.")
    request_id = serializers.CharField(required=False, max_length=128,
                                       help_text="Exactly this request id (X-Request-ID, problem+json request_id).")
    client_request_id = serializers.CharField(
        required=False, max_length=128,
        help_text="Exactly this client request id: the X-Request-ID a client sent (echoed in "
                  "X-Client-Request-ID) when it was not trusted as the request id.")
    actor = serializers.UUIDField(required=False, help_text="The acting user's id.")
    actor_email = serializers.CharField(required=False, max_length=254,
                                        help_text="The acting user's email (as it was at the time).")
    ip = serializers.IPAddressField(required=False, help_text="The client IP.")
    q = serializers.CharField(required=False, max_length=254,
                              help_text="Like the admin's search box: a request id (or client request id), "
                                        "an email or an IP.")
    # Other spellings tools tend to use (Django admin's own date lookups among them).
    created_at__gte = _Bound(end=False, required=False, help_text="Same as created_from.")
    created_at__lt = _Bound(end=False, required=False, help_text="Events before this date or date-time.")
    since = _Bound(end=False, required=False, help_text="Same as created_from.")
    until = _Bound(end=True, required=False, help_text="Same as created_to.")
    actor_id = serializers.UUIDField(required=False, help_text="Same as actor.")
    search = serializers.CharField(required=False, max_length=254, help_text="Same as q.")

    ALIASES = {
        "created_at__gte": "created_from", "since": "created_from", "created_at__lt": "created_to",
        "until": "created_to", "actor_id": "actor", "search": "q",
    }

    def validate(self, attrs):
        for alias, name in self.ALIASES.items():
            if alias in attrs:
                value = attrs.pop(alias)
                attrs.setdefault(name, value)
        return attrs


class AuditEventSerializer(serializers.ModelSerializer):
    actor_id = serializers.CharField(allow_null=True, read_only=True)
    sealed = serializers.BooleanField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "action", "outcome", "actor_id", "actor_email", "target_type",
            "target_id", "target_repr", "request_id", "client_request_id", "session_id", "ip", "user_agent",
            "fingerprint", "method", "path", "route", "extra", "sealed",
        ]
        read_only_fields = fields
