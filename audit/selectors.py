"""Reads of the audit trail, for the staff API (the admin applies the same filters)."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from dashtam.email_address import canonical_email


def audit_events_filtered(
    *,
    action: str | None = None,
    outcome: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    actor: str | None = None,
    actor_email: str | None = None,
    ip: str | None = None,
    q: str | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, newest first. Each filter is an exact match on an
    indexed column; ``q`` means what the admin's search box means (an exact request id, an
    actor's email, or an IP address). ``created_to`` is exclusive."""
    qs = AuditEvent.objects.all()
    if action:
        qs = qs.filter(action=action)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if created_from:
        qs = qs.filter(created_at__gte=created_from)
    if created_to:
        qs = qs.filter(created_at__lt=created_to)
    if request_id:
        qs = qs.filter(request_id=request_id)
    if client_request_id:
        qs = qs.filter(client_request_id=client_request_id)
    if actor:
        qs = qs.filter(actor_id=actor)
    if actor_email:
        qs = qs.filter(actor_email__in={actor_email, actor_email.lower(), canonical_email(actor_email)})
    if ip:
        qs = qs.filter(ip=ip)
    if q:
        qs = audit_events_search(queryset=qs, term=q)
    return qs.order_by("-created_at", "-id")


def audit_events_search(*, queryset: QuerySet[AuditEvent], term: str) -> QuerySet[AuditEvent]:
    """The search box: an IP address, else an email address, else an exact request id or
    client request id (each an indexed column: PostgreSQL combines the two index scans)."""
    term = term.strip()
    if not term:
        return queryset
    try:
        return queryset.filter(ip=str(ipaddress.ip_address(term)))
    except ValueError:
        pass
    if "@" in term:
        return queryset.filter(actor_email__in={term, term.lower(), canonical_email(term)})
    return queryset.filter(Q(request_id=term) | Q(client_request_id=term))
