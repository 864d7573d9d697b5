"""One row per task that could not be handed to the broker (``dashtam.outbox.services``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxTask(models.Model):
    """A Celery task waiting to be published: its name, arguments and request context.

    Written when the broker refused the task (right after the commit of the work that
    enqueued it, or inside that work's transaction when this process already knows the
    broker is down). The sweeper publishes it and deletes the row in one transaction.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    task_name = models.CharField(max_length=200)
    # JSON of the arguments and the request context the message would have carried,
    # sealed with FIELD_ENCRYPTION_KEYS: an email's context may hold a one-time link.
    payload = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["next_attempt_at", "id"], name="outbox_due_idx")]
        verbose_name = "queued task"
        verbose_name_plural = "queued tasks (broker outage)"

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"
