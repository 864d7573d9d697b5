"""The audit trail's hand-written INSERT and seal store what the ORM stores (tests/db_equivalence.py)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.models.signals import post_save
from django.utils import timezone

from accounts.models import User
from audit import services
from audit.models import AuditEvent
from audit.services import batched, record
from tests.db_equivalence import assert_same_rows, with_orm_path

pytestmark = pytest.mark.django_db

USER_ID = uuid.UUID("3d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d")


@pytest.fixture
def pinned_clock(monkeypatch):
    """Both paths stamp ``created_at`` (and hash it) at this very moment."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    # The field's default is the function itself, cached by the field: pin that too.
    monkeypatch.setitem(AuditEvent._meta.get_field("created_at").__dict__, "_get_default", lambda: now)
    return now


def _same_ids_each_run():
    """The next event gets the same id in either run (PostgreSQL's sequences ignore rollbacks;
    SQLite's AUTOINCREMENT counter is rolled back with the run)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1000000, false)", [AuditEvent._meta.db_table])


@pytest.mark.parametrize("rows", [1, 2])
def test_the_insert_statement_writes_the_rows_save_writes(in_request, pinned_clock, rows):
    def build():
        _same_ids_each_run()
        return User.objects.create(id=USER_ID, email="audited@example.com", date_joined=pinned_clock)

    def write(user):
        with batched():
            events = [record(action="auth.login.succeeded", target=user, actor=user,
                             extra={"n": n, "nested": {"when": "2026-11-24"}, "password": "x"}) for n in range(rows)]
        return [event.action for event in events]

    raw, orm = assert_same_rows(fixture=build, raw=write, orm=with_orm_path(services.INSERT)(write),
                                models=[AuditEvent])
    assert raw.result == orm.result
    stored = raw.rows["audit.AuditEvent"]
    assert len(stored) == rows and stored[0]["row_hash"] and stored[0]["extra"]["password"] != "x"


def test_the_insert_statement_is_not_used_while_someone_listens_for_audit_saves():
    assert services.INSERT.usable()

    def listener(**kwargs):
        pass

    post_save.connect(listener, sender=AuditEvent, dispatch_uid="test.audit.listener")
    try:
        assert not services.INSERT.usable()
        record(action="auth.logout")
    finally:
        post_save.disconnect(dispatch_uid="test.audit.listener", sender=AuditEvent)
    assert services.INSERT.usable()
    assert AuditEvent.objects.filter(action="auth.logout").count() == 1


def test_the_seal_statement_writes_what_the_orm_update_writes(in_request, pinned_clock):
    def build():
        _same_ids_each_run()
        user = User.objects.create(id=USER_ID, email="sealed@example.com", date_joined=pinned_clock)
        for n in range(3):
            record(action="auth.logout", actor=user, extra={"n": n})
        return user

    def seal(user):
        return services.audit_chain_seal()

    raw, orm = assert_same_rows(fixture=build, raw=seal, orm=with_orm_path(services.SEAL)(seal),
                                models=[AuditEvent])
    assert raw.result == orm.result == 3
    assert all(row["chain_hash"] and row["seq"] for row in raw.rows["audit.AuditEvent"])
