"""dashtam.db.statements: identifiers from the models, one build per database, one gate."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import pre_save

from audit.models import AuditEvent
from dashtam.db.statements import Statement, Table, statements
from sessions_mgmt.models import Session


def test_a_table_quotes_the_models_own_names():
    q = connection.ops.quote_name
    plain, aliased = Table(Session, connection), Table(Session, connection, "s")
    assert plain.name == plain.ref == q("sessions_mgmt_session")
    assert aliased.ref == f"{q('sessions_mgmt_session')} AS s"
    assert plain.user == plain.user_id == q("user_id")  # a foreign key by name or attname
    assert aliased.revoked_at == f"s.{q('revoked_at')}" and aliased.column("revoked_at") == q("revoked_at")
    assert aliased.pk == f"s.{q('id')}"
    with pytest.raises(Exception):  # noqa: B017 - Django's FieldDoesNotExist
        _ = plain.no_such_field
    with pytest.raises(ValueError):
        Table(get_user_model(), connection).column("login_sessions")  # a reverse relation is not a column


def test_a_statement_is_built_once_per_database_and_variant():
    built = []
    statement = Statement("test.count", lambda db, n=1: built.append((db.alias, n)) or f"SELECT {n:d}", vendors=None)
    try:
        assert statement.get() == statement.get() == "SELECT 1"
        assert statement.get(None, 3) == "SELECT 3"
        assert built == [("default", 1), ("default", 3)]
        statement.forget()
        statement.get()
        assert len(built) == 3
        assert statement in statements()
    finally:
        from dashtam.db import statements as module

        module._registry.remove(statement)


def test_the_gate_checks_the_database_and_the_listeners_of_what_it_writes():
    anywhere = Statement("test.any", lambda db: "", vendors=None, writes_without_save=["audit.AuditEvent"])
    postgres_only = Statement("test.pg", lambda db: "")
    needs_a_feature = Statement("test.feature", lambda db: "", vendors=None, features=["has_no_such_feature_flag"])
    try:
        assert anywhere.usable()
        assert postgres_only.usable() == (connection.vendor == "postgresql")
        with pytest.raises(AttributeError):
            needs_a_feature.usable()

        def listener(**kwargs):
            pass

        pre_save.connect(listener, sender=AuditEvent, dispatch_uid="test.gate")
        try:
            assert not anywhere.usable()
        finally:
            pre_save.disconnect(dispatch_uid="test.gate", sender=AuditEvent)
        assert anywhere.usable()
    finally:
        from dashtam.db import statements as module

        for statement in (anywhere, postgres_only, needs_a_feature):
            module._registry.remove(statement)
