"""The audit trail: append-only security events with their request context.

Append-only twice over: the model and its queryset refuse updates and deletes
(below), and on PostgreSQL a trigger (migrations 0003 and 0005) rejects UPDATE
and DELETE on the table itself, except the writes the trail needs: sealing a new
row into the hash chain, a deleted user's foreign key going NULL, and the
retention purge (``SET LOCAL dashtam.audit_purge = 'on'``).
SQLite has no such trigger: there, the model-level guard is all there is.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.utils import timezone

# Written once, by the sealing task, on a row that has none yet.
SEAL_FIELDS = frozenset({"seq", "prev_hash", "chain_hash"})


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # Two updates are part of the design: sealing (only the seal fields) and a
        # deleted user's events losing their foreign key (the email snapshot stays).
        if set(kwargs) <= SEAL_FIELDS or (
            set(kwargs) <= {"actor", "actor_id"} and all(v is None for v in kwargs.values())
        ):
            return super().update(**kwargs)
        raise AppendOnlyError("Audit events are append-only: they cannot be updated.")

    update.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            obj.take_row_hash()
        return super().bulk_create(objs, *args, **kwargs)

    def delete(self):
        raise AppendOnlyError("Audit events are append-only: only the retention purge deletes them.")

    delete.queryset_only = True
    delete.alters_data = True

    def _purge_delete(self) -> int:
        """Delete these rows (retention purge only; the caller sets the PostgreSQL flag)."""
        return models.QuerySet.delete(self)[0]


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_constraint=True,
    )
    actor_email = models.CharField(max_length=254, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    # The X-Request-ID the client sent, when it was not trusted as the request id
    # (no trusted proxy in front): kept for the client's own correlation, never an identity.
    client_request_id = models.CharField(max_length=128, null=True, blank=True)
    session_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=512, blank=True)
    route = models.CharField(max_length=255, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    # Keyed hash of the content, taken at insert (audit.chain): covers the row until it is sealed.
    row_hash = models.CharField(max_length=64, blank=True, editable=False)
    # The hash chain (audit.chain): empty until the sealing task links the row in.
    seq = models.PositiveBigIntegerField(null=True, blank=True, unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    chain_hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="audit_created_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_created_idx"),
            models.Index(fields=["action", "-created_at"], name="audit_action_created_idx"),
            models.Index(fields=["request_id"], name="audit_request_idx"),
            models.Index(fields=["client_request_id"], name="audit_client_request_idx"),
            models.Index(fields=["ip", "-created_at"], name="audit_ip_created_idx"),
            models.Index(fields=["actor_email", "-created_at"], name="audit_email_created_idx"),
            # The sealing task's work queue: small, because sealed rows leave it.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_unsealed_idx"),
        ]
        permissions = [("export_auditevent", "Can export audit events as CSV")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only: they cannot be changed.")
        self.take_row_hash()
        return super().save(*args, **kwargs)

    def take_row_hash(self) -> None:
        """Hash the content as the database will store it (extra through a JSON round trip)."""
        from audit import chain

        self.created_at = self.created_at or timezone.now()
        self.extra = json.loads(json.dumps(self.extra if self.extra is not None else {}))
        self.row_hash = chain.row_digest({name: getattr(self, name) for name in chain.ROW_FIELDS})

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")

    @property
    def sealed(self) -> bool:
        return bool(self.chain_hash)
