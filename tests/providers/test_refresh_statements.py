"""The refresh's lock and write on PostgreSQL match what the ORM reads and writes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from providers import refresh_statements
from providers.models import ConnectionStatus, ProviderConnection, ProviderToken
from tests.db_equivalence import assert_same_rows
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


def test_postgresql_uses_the_written_out_statements():
    assert db.vendor == "postgresql" and refresh_statements.supported()


def test_the_lock_statement_returns_and_leaves_what_the_orm_query_does(monkeypatch):
    """On equal rows (built directly), the written-out lock and the ORM path's query agree."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    ids = {"user": uuid.UUID("5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"),
           "connection": uuid.UUID("1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b")}

    def build():
        user = User.objects.create(id=ids["user"], email="locked@example.com", date_joined=now)
        connection = ProviderConnection.objects.create(
            id=ids["connection"], user=user, provider_key="schwab", alias="Brokerage",
            status=ConnectionStatus.ACTIVE, connected_at=now)
        ProviderToken.objects.create(id=uuid.UUID("9c8b7a6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d"), connection=connection,
                                     access_token_encrypted="sealed-access", refresh_token_encrypted="sealed-refresh",
                                     expires_at=now + timedelta(minutes=30), key_id="k1", token_version=2)
        return connection.pk

    def loaded(token):
        return (_fields(token), _fields(token.connection), _fields(token.connection.user))

    def raw(connection_id):
        return loaded(refresh_statements.lock_token(connection_id, wait=True))

    def orm(connection_id):  # the query providers.services takes where the statement is not usable
        qs = ProviderToken.objects.select_related("connection", "connection__user").select_for_update(of=("self",))
        return loaded(next(iter(qs.filter(connection_id=connection_id))))

    by_raw, by_orm = assert_same_rows(fixture=build, raw=raw, orm=orm,
                                      models=[ProviderToken, ProviderConnection, User])
    assert by_raw.result == by_orm.result


def test_the_user_key_share_statement_locks_the_user_table_for_key_share(user):
    assert refresh_statements.USER_KEY_SHARE.usable()
    with transaction.atomic():
        refresh_statements.user_key_share(user.pk)
        with db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND mode = 'RowShareLock' "
                           "AND relation = %s::regclass", [User._meta.db_table])
            assert cursor.fetchone()[0] == 1
