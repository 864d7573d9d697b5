"""The refresh's lock and write on PostgreSQL match what the ORM reads and writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.db import connection as db
from django.utils import timezone

from providers import refresh_statements
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from tests.providers.conftest import connect

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'",
                       reason="written out for PostgreSQL only; other databases use the ORM"),
]


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_the_lock_reads_what_the_orm_reads_in_one_query(auth_client, schwab, django_assert_num_queries):
    connection_id = connect(auth_client, schwab)
    orm = ProviderToken.objects.select_related("connection", "connection__user").get(connection_id=connection_id)
    with transaction.atomic(), django_assert_num_queries(1):
        token = refresh_statements.lock_token(connection_id, wait=False)
        assert _fields(token) == _fields(orm)
        assert _fields(token.connection) == _fields(orm.connection)
        assert _fields(token.connection.user) == _fields(orm.connection.user)
    assert token.expires_at.tzinfo is not None
    assert refresh_statements.lock_token("9b0b7f36-5a39-4c43-b2a3-2c0f1b6c1d11", wait=False) is None


def test_the_write_saves_both_rows_in_one_statement(auth_client, schwab, django_assert_num_queries):
    connection_id = connect(auth_client, schwab)
    ProviderConnection.objects.filter(pk=connection_id).update(
        status=ConnectionStatus.ERROR, consecutive_failures=3, last_error_code="server_error",
        last_error_message="HTTP 500")
    with transaction.atomic():
        token = refresh_statements.lock_token(connection_id, wait=True)
        connection = token.connection
        before = token.updated_at
        token.expires_at = timezone.now() + timedelta(minutes=30)
        token.refresh_count = 7
        token.scope = "api"
        connection.status = ConnectionStatus.ACTIVE
        connection.consecutive_failures = 0
        connection.last_error_code = connection.last_error_message = ""
        with django_assert_num_queries(1):
            refresh_statements.save_refreshed(
                token, ["expires_at", "refresh_count", "scope", "updated_at"],
                connection, ["status", "consecutive_failures", "last_error_code", "last_error_message",
                             "updated_at"])
    saved = ProviderToken.objects.get(connection_id=connection_id)
    assert saved.refresh_count == 7 and saved.expires_at == token.expires_at and saved.updated_at > before
    connection = ProviderConnection.objects.get(pk=connection_id)
    assert connection.status == ConnectionStatus.ACTIVE and connection.consecutive_failures == 0
    assert connection.last_error_code == "" and connection.last_error_message == ""


def test_the_write_fails_when_the_token_is_gone(auth_client, schwab):
    connection_id = connect(auth_client, schwab)
    token = ProviderToken.objects.select_related("connection").get(connection_id=connection_id)
    ProviderToken.objects.filter(pk=token.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        refresh_statements.save_refreshed(token, ["refresh_count"], token.connection, ["status"])
    assert ProviderConnection.objects.get(pk=connection_id).status == ConnectionStatus.ACTIVE


def test_postgresql_uses_the_written_out_statements():
    assert db.vendor == "postgresql" and refresh_statements.supported()
