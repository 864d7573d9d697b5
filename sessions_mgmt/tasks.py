"""Periodic work of the sessions app."""

from __future__ import annotations

import logging

from celery import shared_task

from sessions_mgmt.services import sessions_cleanup

logger = logging.getLogger("dashtam.sessions")


@shared_task(acks_late=True, ignore_result=True)
def cleanup_sessions() -> dict:
    """Daily: delete old sessions and expired token rows, in batches.

    Idempotent and safe to overlap with itself: each batch is a short transaction
    and a second run only finds less to delete.
    """
    result = sessions_cleanup()
    logger.info("sessions clean-up", extra=result)
    return result
