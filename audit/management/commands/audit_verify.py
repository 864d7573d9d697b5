"""Walk the audit hash chain; exit non-zero when a link is broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.services import audit_chain_seal, audit_chain_verify, record
from dashtam import context


class Command(BaseCommand):
    help = ("Verify the audit trail's hash chain: prints OK with the number of events checked, "
            "or the first broken link (and exits with status 1).")

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true",
                            help="Seal pending events into the chain before verifying.")
        parser.add_argument("--no-record", action="store_true",
                            help="Do not write an audit.verified event with the result.")
        parser.add_argument("--against", action="append", default=[], metavar="SEQ:HASH",
                            help="A published chain head (from the 'audit chain head' log line, or an "
                                 "audit.head_published event copied elsewhere): prove that nothing up to "
                                 "it changed. May be given more than once.")

    def handle(self, *args, seal=False, no_record=False, against=(), **options):
        heads = [_parse_head(value) for value in against]
        token = context.set_context(context.RequestContext(
            request_id=context.new_request_id(), route="manage.py audit_verify", origin="command",
        ))
        try:
            self._verify(seal=seal, no_record=no_record, heads=heads)
        finally:
            context.reset(token)

    def _verify(self, *, seal: bool, no_record: bool, heads: list[tuple[int, str]]) -> None:
        if seal:
            audit_chain_seal()
        report = audit_chain_verify(against=heads)
        if not no_record:
            with transaction.atomic():
                record(action="audit.verified", outcome="success" if report.ok else "failure", extra={
                    "checked": report.checked, "unsealed": report.unsealed,
                    "broken_event_id": report.broken_event_id, "broken_seq": report.broken_seq,
                    "reason": report.reason, "against": [f"{seq}:{h}" for seq, h in heads],
                })
        if not report.ok:
            self.stderr.write(str(report))
            raise CommandError(str(report), returncode=1)
        self.stdout.write(str(report))


def _parse_head(value: str) -> tuple[int, str]:
    seq, sep, head = value.strip().partition(":")
    if not sep or not seq.isdigit() or int(seq) < 1 or len(head) != 64 or any(
            c not in "0123456789abcdef" for c in head):
        raise CommandError(f"--against {value!r}: expected SEQ:HASH (a seq number, a colon, 64 hex digits)")
    return int(seq), head
