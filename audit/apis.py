"""Staff API over the audit trail: the admin's filters, for tooling."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView

from audit.selectors import audit_events_filtered
from audit.serializers import AuditEventFilterSerializer, AuditEventSerializer
from dashtam.api.pagination import CursorPagination
from dashtam.api.permissions import staff_with


class AuditEventPagination(CursorPagination):
    # created_at first (its index), id to break ties between events of the same microsecond.
    ordering = ("-created_at", "-id")


class AuditEventListApi(ListAPIView):
    # As the admin's audit log: staff holding audit.view_auditevent, not every staff member.
    permission_classes = [staff_with("audit.view_auditevent")]
    serializer_class = AuditEventSerializer
    pagination_class = AuditEventPagination

    @extend_schema(
        operation_id="audit_events_list", tags=["admin"],
        summary="Search the audit trail (staff with audit.view_auditevent)",
        parameters=[AuditEventFilterSerializer],
        responses={
            200: AuditEventSerializer(many=True),
            403: OpenApiResponse(description="PERMISSION_DENIED: the caller is not staff with the "
                                             "audit.view_auditevent permission."),
        },
        description=(
            "Audit events, newest first, cursor-paginated (follow `next`; there is no total count). "
            "Every filter is an exact match and they combine with AND. Start from the `request_id` "
            "of a problem+json error to see everything that request and its background tasks did."
        ),
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = AuditEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = dict(filters.validated_data)
        if data.get("actor"):
            data["actor"] = str(data["actor"])
        return audit_events_filtered(**data)
