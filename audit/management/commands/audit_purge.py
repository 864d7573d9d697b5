"""Run the retention purge now (the beat task does the same every day)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from audit.services import audit_events_purge
from dashtam import context


class Command(BaseCommand):
    help = ("Delete audit events older than AUDIT_RETENTION_DAYS, oldest first, in batches; "
            "each batch records an audit.purged event.")

    def handle(self, *args, **options):
        token = context.set_context(context.RequestContext(
            request_id=context.new_request_id(), route="manage.py audit_purge", origin="command",
        ))
        try:
            purged = audit_events_purge()
        finally:
            context.reset(token)
        self.stdout.write(f"Purged {purged} audit event(s) older than the retention period.")
