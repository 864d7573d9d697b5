"""Periodic upkeep of the audit trail (entries in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task

from audit.services import audit_chain_head, audit_chain_head_publish, audit_chain_seal, audit_events_purge

logger = logging.getLogger("dashtam.audit")


@shared_task(acks_late=True, ignore_result=True)
def seal_audit_chain() -> int:
    """Every minute: link new audit events into the hash chain, in batches.

    Safe to overlap with itself and with the purge (a second sealer finds the
    chain lock taken and does nothing). Keeps the request path free of any hot row.
    """
    sealed = audit_chain_seal()
    if sealed:
        head_seq, head_hash = audit_chain_head()
        logger.info("audit events sealed", extra={"sealed": sealed, "head_seq": head_seq, "head_hash": head_hash})
    return sealed


@shared_task(acks_late=True, ignore_result=True)
def purge_audit_events() -> int:
    """Daily: delete audit events older than AUDIT_RETENTION_DAYS, in batches.

    Each batch records one ``audit.purged`` event. Idempotent: a second run finds
    nothing old enough.
    """
    from django.conf import settings

    if not settings.AUDIT_PURGE_ENABLED:
        # The deployment purges under a separate database role (docs/audit.md), not from beat.
        return 0
    purged = audit_events_purge()
    logger.info("audit retention purge", extra={"purged": purged})
    return purged


@shared_task(acks_late=True, ignore_result=True)
def publish_audit_chain_head() -> int:
    """Every AUDIT_HEAD_PUBLISH_INTERVAL seconds: seal what is pending, then publish the chain's
    head (seq and hash) to the log and the admin (``audit.head_published``). Idempotent."""
    audit_chain_seal()
    seq, _ = audit_chain_head_publish()
    return seq
