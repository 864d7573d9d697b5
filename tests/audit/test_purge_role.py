"""The purge escape hatch under its own database role: the application's role cannot use it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_chain_seal, audit_chain_verify, audit_events_purge, record
from tests.audit.conftest import require_postgresql

pytestmark = pytest.mark.django_db


def _as(role: str):
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")


@pytest.fixture
def roles():
    """The two roles, with exactly the grants `manage.py audit_role_sql` prints (undone with the test)."""
    require_postgresql()
    suffix = uuid.uuid4().hex[:10]
    app, purge = f"dashtam_app_{suffix}", f"dashtam_purge_{suffix}"
    out = StringIO()
    call_command("audit_role_sql", "--app-role", app, "--purge-role", purge, stdout=out)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {app} NOLOGIN")
        cursor.execute(f"CREATE ROLE {purge} NOLOGIN")
        for statement in out.getvalue().split(";"):
            if statement.strip():
                cursor.execute(statement)
    return app, purge


def test_the_application_role_cannot_delete_or_edit_audit_rows_even_with_the_purge_flag(in_request, roles):
    app, _ = roles
    events = [record(action="auth.logout", extra={"n": n}) for n in range(3)]
    audit_chain_seal()
    for sql in ("DELETE FROM audit_auditevent WHERE id = %s",
                "UPDATE audit_auditevent SET ip = '10.9.9.9' WHERE id = %s"):
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            _as(app)
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL dashtam.audit_purge = 'on'")
                cursor.execute(sql, [events[0].pk])
    # What the application does need still works under its role: write, seal, verify.
    with transaction.atomic():
        _as(app)
        record(action="auth.logout", extra={"n": 3})
        assert audit_chain_seal() == 1
        assert audit_chain_verify().ok
    assert AuditEvent.objects.count() == 4


def test_the_purge_role_runs_the_purge_and_the_trail_still_verifies(in_request, roles, settings):
    _, purge = roles
    settings.AUDIT_RETENTION_DAYS = 1
    for n in range(3):
        record(action="auth.logout", extra={"n": n})
    with transaction.atomic():
        _as(purge)
        assert audit_events_purge(now=timezone.now() + timedelta(days=2)) == 3
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["audit.purged"]
    assert audit_chain_verify().ok


def test_beat_leaves_the_purge_to_its_role_when_told(in_request, settings):
    from audit.tasks import purge_audit_events
    from tests.audit.test_chain import _tamper

    settings.AUDIT_RETENTION_DAYS = 1
    event = record(action="auth.logout")
    _tamper("UPDATE audit_auditevent SET created_at = %s WHERE id = %s", [timezone.now() - timedelta(days=3), event.pk])
    settings.AUDIT_PURGE_ENABLED = False
    assert purge_audit_events.apply().get() == 0
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    settings.AUDIT_PURGE_ENABLED = True
    assert purge_audit_events.apply().get() == 1
