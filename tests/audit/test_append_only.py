"""Nobody can quietly edit the trail: the model refuses, and PostgreSQL refuses too."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_chain_seal, record
from tests.audit.conftest import require_postgresql

pytestmark = pytest.mark.django_db


def test_the_model_refuses_to_change_or_delete_an_event(in_request):
    event = record(action="auth.logout")
    event.action = "auth.login.succeeded"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="denied")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "auth.logout"


def _raw(sql: str, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_update_is_rejected_by_postgresql(in_request):
    require_postgresql()
    event = record(action="auth.logout")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditevent SET action = 'auth.login.succeeded' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditevent SET ip = '6.6.6.6', seq = 99, chain_hash = 'x' WHERE id = %s",
             [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "auth.logout"


def test_raw_delete_is_rejected_by_postgresql(in_request):
    require_postgresql()
    event = record(action="auth.logout")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_sealed_event_cannot_be_resealed_on_postgresql(in_request):
    require_postgresql()
    event = record(action="auth.logout")
    audit_chain_seal()
    with pytest.raises(DatabaseError, match="already sealed"):
        _raw("UPDATE audit_auditevent SET chain_hash = %s WHERE id = %s", ["0" * 64, event.pk])


@pytest.mark.django_db(transaction=True)
def test_only_the_purge_flag_lets_postgresql_delete(in_request):
    require_postgresql()
    event = record(action="auth.logout")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL dashtam.audit_purge = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    # SET LOCAL ended with that transaction: the next delete is refused again.
    other = record(action="auth.logout")
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [other.pk])


def test_the_purge_flag_also_lets_an_update_through_and_audit_verify_catches_it(in_request):
    """The flag is the maintenance exception the trigger allows; the hashes still see the edit."""
    from django.core.management import CommandError, call_command

    from audit.services import audit_chain_seal

    require_postgresql()
    events = [record(action="auth.logout") for _ in range(3)]
    audit_chain_seal()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL dashtam.audit_purge = 'on'")
        cursor.execute("UPDATE audit_auditevent SET action = 'auth.login.succeeded' WHERE id = %s",
                       [events[1].pk])
        cursor.execute("SET LOCAL dashtam.audit_purge = 'off'")
    with pytest.raises(CommandError, match=f"event id {events[1].pk}"):
        call_command("audit_verify", "--no-record")
