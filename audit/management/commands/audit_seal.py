"""Seal the events not yet in the hash chain now (the beat task does the same every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from audit.services import audit_chain_head, audit_chain_seal
from dashtam import context


class Command(BaseCommand):
    help = ("Link every audit event not sealed yet into the hash chain, oldest first, in batches "
            "(safe beside the beat task: a second sealer waits its turn by skipping).")

    def handle(self, *args, **options):
        token = context.set_context(context.RequestContext(
            request_id=context.new_request_id(), route="manage.py audit_seal", origin="command",
        ))
        try:
            sealed = audit_chain_seal(max_batches=1_000_000)
        finally:
            context.reset(token)
        seq, head = audit_chain_head()
        self.stdout.write(f"Sealed {sealed} audit event(s); the chain's head is seq {seq} ({head[:16]}...).")
