"""Beat's outbox sweeper (entry ``outbox-sweep`` in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from dashtam.outbox.services import outbox_sweep


@shared_task(acks_late=True, ignore_result=True)
def sweep_outbox() -> int:
    """Every OUTBOX_SWEEP_INTERVAL seconds: publish the tasks the broker refused earlier.

    Safe to overlap with itself (rows are claimed with skip_locked). Returns how
    many tasks were published.
    """
    return outbox_sweep()
