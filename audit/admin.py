"""The audit log in the admin: read-only, for staff who investigate.

Built for a table of millions of rows: every filter and search hits an index
(action, outcome, created_at, request_id, actor, actor_email, ip), the list
never counts the whole table (``show_full_result_count = False`` and a
paginator that counts at most AUDIT_ADMIN_COUNT_LIMIT + 1 matching rows), and
filter choices come from the catalogue, not from a DISTINCT over the table.
Visible to users with ``audit.view_auditevent``; nobody can add, change or
delete an event here.
"""

from __future__ import annotations

import csv
import ipaddress
import json
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from audit.catalogue import CATALOGUE
from audit.models import AuditEvent
from audit.selectors import audit_events_search
from audit.services import record
from dashtam.admin import ReadOnlyAdmin

CSV_FIELDS = (
    "id", "created_at", "action", "outcome", "actor_id", "actor_email", "target_type", "target_id",
    "target_repr", "request_id", "session_id", "ip", "user_agent", "fingerprint", "method", "path",
    "route", "extra", "seq", "chain_hash",
)


class CappedCountPaginator(Paginator):
    """Counts at most AUDIT_ADMIN_COUNT_LIMIT + 1 rows: ``COUNT(*)`` over a LIMITed subquery.

    ``capped`` tells the template to show "more than N" instead of a number.
    """

    @cached_property
    def count(self) -> int:
        limit = settings.AUDIT_ADMIN_COUNT_LIMIT
        return self.object_list.order_by()[: limit + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > settings.AUDIT_ADMIN_COUNT_LIMIT


def _changelist_url(**params) -> str:
    return reverse("admin:audit_auditevent_changelist") + "?" + urlencode(params)


class ActionFilter(admin.SimpleListFilter):
    """Choices from the catalogue (no DISTINCT over the table)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(code, code) for code in sorted(CATALOGUE)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action=self.value())
        return queryset


class _ValueFilter(admin.SimpleListFilter):
    """A filter on one exact value, set by the links in each row; shows only the value in use."""

    field = ""

    def lookups(self, request, model_admin):
        value = request.GET.get(self.parameter_name)
        return [(value, self.label(value))] if value else []

    def label(self, value: str) -> str:
        return value

    def queryset(self, request, queryset):
        if self.value():
            try:
                return queryset.filter(**{self.field: self.value()})
            except (ValueError, ValidationError) as exc:
                raise IncorrectLookupParameters(exc) from exc
        return queryset


class RequestFilter(_ValueFilter):
    title = "request"
    parameter_name = "request_id"
    field = "request_id"


class ActorFilter(_ValueFilter):
    title = "actor"
    parameter_name = "actor"
    field = "actor_id"

    def label(self, value: str) -> str:
        email = (AuditEvent.objects.filter(actor_id=value).order_by("-created_at", "-id")
                 .values_list("actor_email", flat=True).first()) if _is_pk(value) else None
        return email or value


class ActorEmailFilter(_ValueFilter):
    title = "actor email"
    parameter_name = "actor_email"
    field = "actor_email"


class IpFilter(_ValueFilter):
    title = "IP"
    parameter_name = "ip"
    field = "ip"

    def queryset(self, request, queryset):
        if self.value():
            try:
                ipaddress.ip_address(self.value())
            except ValueError as exc:
                # PostgreSQL's inet would refuse it with an error, not an empty list.
                raise IncorrectLookupParameters(exc) from exc
        return super().queryset(request, queryset)


def _is_pk(value: str) -> bool:
    from django.contrib.auth import get_user_model

    try:
        get_user_model()._meta.pk.to_python(value)
    except (ValueError, ValidationError):
        return False
    return True


def _parse_bound(value: str, *, end: bool):
    """A date (whole day, UTC) or an ISO datetime; None when unparseable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is not None:
            return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
        day = parse_date(value)
    except ValueError:
        return None
    if day is None:
        return None
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


class DateRangeFilter(admin.ListFilter):
    """created_at between ``created_from`` and ``created_to`` (dates are whole UTC days)."""

    title = "date (UTC)"
    template = "admin/audit/date_range_filter.html"
    parameter_from = "created_from"
    parameter_to = "created_to"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in (self.parameter_from, self.parameter_to):
            if name in params:
                value = params.pop(name)
                self.used_parameters[name] = value[-1] if isinstance(value, list) else value
        self.hidden_params: list[tuple[str, str]] = [
            (key, value) for key, value in request.GET.items()
            if key not in (self.parameter_from, self.parameter_to, "p", "e")
        ]

    @property
    def value_from(self) -> str:
        return self.used_parameters.get(self.parameter_from, "")

    @property
    def value_to(self) -> str:
        return self.used_parameters.get(self.parameter_to, "")

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return [self.parameter_from, self.parameter_to]

    def queryset(self, request, queryset):
        start = _parse_bound(self.value_from, end=False)
        end = _parse_bound(self.value_to, end=True)
        if (self.value_from and start is None) or (self.value_to and end is None):
            raise IncorrectLookupParameters("Dates must be YYYY-MM-DD or ISO 8601 date-times.")
        if start is not None:
            queryset = queryset.filter(created_at__gte=start)
        if end is not None:
            queryset = queryset.filter(created_at__lt=end)
        return queryset

    def choices(self, changelist):
        today = timezone.now().astimezone(UTC).date()
        presets = [
            ("Any date", None),
            ("Today", today),
            ("Past 7 days", today - timedelta(days=6)),
            ("Past 30 days", today - timedelta(days=29)),
        ]
        for label, start in presets:
            if start is None:
                params = {}
                selected = not (self.value_from or self.value_to)
            else:
                params = {self.parameter_from: start.isoformat()}
                selected = self.value_from == start.isoformat() and not self.value_to
            yield {
                "selected": selected,
                "query_string": changelist.get_query_string(
                    params, [self.parameter_from, self.parameter_to]),
                "display": label,
            }


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # A spreadsheet would run a cell that starts like a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):  # read-only for everyone
    list_display = ("created_at", "request_link", "action", "outcome", "actor_link", "ip", "target_short")
    list_display_links = ("created_at",)
    list_filter = (ActionFilter, "outcome", DateRangeFilter, RequestFilter, ActorFilter,
                   ActorEmailFilter, IpFilter)
    list_select_related = ("actor",)
    search_fields = ("request_id",)  # shows the box; get_search_results decides what it means
    search_help_text = "An exact request id, an actor's email address, or an IP address."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would COUNT(*) the table per choice
    paginator = CappedCountPaginator
    list_per_page = 50
    list_max_show_all = 200
    actions = ["export_csv"]
    ordering = ("-created_at", "-id")
    fields = ("created_at", "action", "meaning", "outcome", "actor_link", "actor_email",
              "same_actor", "target", "request_id", "same_request", "session_id", "ip", "user_agent",
              "fingerprint", "method", "path", "route", "extra_pretty", "seq", "prev_hash", "chain_hash")
    readonly_fields = fields

    # --- search: exact matches on indexed columns only ------------------------------------------
    def get_search_results(self, request, queryset, search_term):
        return audit_events_search(queryset=queryset, term=search_term), False

    # --- columns and links -------------------------------------------------------------------
    @admin.display(description="actor")
    def actor_link(self, obj):
        if obj.actor_id:
            return format_html('<a href="{}">{}</a>', _changelist_url(actor=obj.actor_id),
                               obj.actor_email or obj.actor_id)
        if obj.actor_email:
            return format_html('<a href="{}">{}</a>', _changelist_url(actor_email=obj.actor_email),
                               obj.actor_email)
        return "-"

    @admin.display(description="request")
    def request_link(self, obj):
        if not obj.request_id:
            return "-"
        return format_html('<a href="{}" title="All events of this request">{}</a>',
                           _changelist_url(request_id=obj.request_id), obj.request_id)

    @admin.display(description="same request")
    def same_request(self, obj):
        return self.request_link(obj)

    @admin.display(description="same actor")
    def same_actor(self, obj):
        return self.actor_link(obj)

    @admin.display(description="target")
    def target(self, obj):
        if not obj.target_type:
            return "-"
        return f"{obj.target_type} {obj.target_id}: {obj.target_repr}"

    @admin.display(description="target")
    def target_short(self, obj):
        if not obj.target_type:
            return "-"
        return f"{obj.target_type.rsplit('.', 1)[-1]}: {obj.target_repr[:60]}"

    @admin.display(description="meaning")
    def meaning(self, obj):
        return CATALOGUE.get(obj.action, "")

    @admin.display(description="extra")
    def extra_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.extra, indent=2, sort_keys=True, ensure_ascii=False))

    # --- export ------------------------------------------------------------------------------
    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("audit.export_auditevent")

    @admin.action(description="Export the selected events as CSV (streamed)", permissions=["export"])
    def export_csv(self, request, queryset):
        """Streams rows in keyset-free chunks (a server-side cursor); audited as admin.action."""
        with transaction.atomic():
            record(action="admin.action", actor=request.user, extra={
                "action": "audit.export_csv",
                "filters": {k: v for k, v in request.GET.items() if k not in ("p", "o")},
            })
        rows = queryset.order_by("-created_at", "-id").values_list(*CSV_FIELDS).iterator(chunk_size=2000)
        writer = csv.writer(_Echo())

        def stream():
            yield writer.writerow(CSV_FIELDS)
            for row in rows:
                yield writer.writerow([_csv_cell(v) for v in row])

        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.csv"'
        return response
