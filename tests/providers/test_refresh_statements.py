"""The refresh's lock and write on PostgreSQL match what the ORM reads and writes."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.db import transaction

from providers import refresh_statements
from providers.models import ProviderToken
from tests.factories import ProviderTokenFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("not __import__('django.db').db.connection.vendor == 'postgresql'",
                       reason="written out for PostgreSQL only; other databases use the ORM"),
]


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_the_lock_reads_what_the_orm_reads_in_one_query(user, django_assert_num_queries):
    connection_id = ProviderTokenFactory(connection__user=user).connection_id
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
