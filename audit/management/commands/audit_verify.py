"""Walk the audit hash chain; exit non-zero when a link is broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit import context
from audit.services import audit_chain_seal, audit_chain_verify, record


class Command(BaseCommand):
    help = ("Verify the audit trail's hash chain: prints OK with the number of events checked, "
            "or the first broken link (and exits with status 1).")

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true",
                            help="Seal pending events into the chain before verifying.")
        parser.add_argument("--no-record", action="store_true",
                            help="Do not write an audit.verified event with the result.")

    def handle(self, *args, seal=False, no_record=False, **options):
        token = context.set_context(context.RequestContext(
            request_id=context.new_request_id(), route="manage.py audit_verify", origin="command",
        ))
        try:
            self._verify(seal=seal, no_record=no_record)
        finally:
            context.reset(token)

    def _verify(self, *, seal: bool, no_record: bool) -> None:
        if seal:
            audit_chain_seal()
        report = audit_chain_verify()
        if not no_record:
            with transaction.atomic():
                record(action="audit.verified", outcome="success" if report.ok else "failure", extra={
                    "checked": report.checked, "unsealed": report.unsealed,
                    "broken_event_id": report.broken_event_id, "broken_seq": report.broken_seq,
                    "reason": report.reason,
                })
        if not report.ok:
            self.stderr.write(str(report))
            raise CommandError(str(report), returncode=1)
        self.stdout.write(str(report))
