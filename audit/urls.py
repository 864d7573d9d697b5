"""Mounted at /api/v1/admin/audit/."""

from django.urls import path

from audit import apis

urlpatterns = [
    path("events", apis.AuditEventListApi.as_view(), name="audit-events"),
]
