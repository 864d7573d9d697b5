"""The token refresh's lock and write, written out once for PostgreSQL.

Every connection is refreshed about every half hour, so these two are the app's most
frequent statements. Through the ORM, the lock (a ``SELECT ... FOR UPDATE`` of the
token joined to its connection and user) and the write (an ``UPDATE`` of the token,
another of the connection) were compiled again on every refresh: about a third of a
refresh's CPU. Here the SQL is built once per process from the models' metadata, the
rows become model instances through ``Model.from_db`` (what the ORM does), and the two
UPDATEs are one statement (one round trip).

Same rows, same locks, same values as the ORM path, which other databases (SQLite in
tests, where ``select_for_update`` does nothing) keep using, as does any process where
something listens for the models' save signals. ``auto_now`` fields are set through their
``pre_save``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.db import connection as db
from django.db.models.signals import post_save, pre_save

from providers.models import ProviderConnection, ProviderToken


@dataclass(frozen=True)
class _Plan:
    skip_locked_sql: str
    wait_sql: str
    # (model, attnames, converters by position or None) for token, connection, user
    models: tuple
    connection_id_field: object


_plans: dict[str, _Plan] = {}
_updates: dict[tuple, str] = {}


def supported() -> bool:
    """PostgreSQL, and no one listening for the saves these statements do not send."""
    return db.vendor == "postgresql" and not any(
        signal.has_listeners(model)
        for signal in (pre_save, post_save) for model in (ProviderToken, ProviderConnection))


def _converters(field, alias: str):
    col = field.get_col(alias)
    found = db.ops.get_db_converters(col) + col.get_db_converters(db)
    return (col, found) if found else None


def _plan() -> _Plan:
    plan = _plans.get(db.alias)
    if plan is not None:
        return plan
    q = db.ops.quote_name
    user_model = get_user_model()
    parts = ((ProviderToken, "t"), (ProviderConnection, "c"), (user_model, "u"))
    columns, models = [], []
    for model, alias in parts:
        fields = model._meta.concrete_fields
        columns += [f"{alias}.{q(f.column)}" for f in fields]
        models.append((model, [f.attname for f in fields], [_converters(f, alias) for f in fields]))
    connection_fk = ProviderToken._meta.get_field("connection")
    user_fk = ProviderConnection._meta.get_field("user")
    # Identifiers from the models' metadata, quoted; every value is a parameter.
    base = (
        f"SELECT {', '.join(columns)} FROM {q(ProviderToken._meta.db_table)} t"  # noqa: S608  # nosec B608
        f" JOIN {q(ProviderConnection._meta.db_table)} c ON c.{q(connection_fk.target_field.column)} = t.{q(connection_fk.column)}"
        f" JOIN {q(user_model._meta.db_table)} u ON u.{q(user_fk.target_field.column)} = c.{q(user_fk.column)}"
        f" WHERE t.{q(connection_fk.column)} = %s FOR UPDATE OF t"
    )
    plan = _plans[db.alias] = _Plan(base + " SKIP LOCKED", base, tuple(models), connection_fk)
    return plan


def lock_token(connection_id, *, wait: bool) -> ProviderToken | None:
    """The connection's token row, locked for this transaction, with ``token.connection``
    and ``token.connection.user`` loaded; None when there is none or (unless ``wait``)
    another transaction holds its lock. PostgreSQL only (see ``supported``)."""
    plan = _plan()
    value = plan.connection_id_field.get_db_prep_value(connection_id, db)
    with db.cursor() as cursor:
        cursor.execute(plan.wait_sql if wait else plan.skip_locked_sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    built, start = [], 0
    for model, attnames, converters in plan.models:
        values = list(row[start:start + len(attnames)])
        for i, conv in enumerate(converters):
            if conv is not None:
                col, functions = conv
                for function in functions:
                    values[i] = function(values[i], col, db)
        built.append(model.from_db(db.alias, attnames, values))
        start += len(attnames)
    token, connection, user = built
    connection.user = user
    token.connection = connection
    return token


def save_refreshed(token: ProviderToken, token_fields: list[str],
                   connection: ProviderConnection, connection_fields: list[str]) -> None:
    """``token.save(update_fields=token_fields)`` and ``connection.save(update_fields=...)``
    in one statement. Raises DatabaseError when either row is gone, as save() does."""
    key = (db.alias, tuple(token_fields), tuple(connection_fields))
    sql = _updates.get(key)
    q = db.ops.quote_name
    if sql is None:
        def assignments(model, names):
            return ", ".join(f"{q(model._meta.get_field(n).column)} = %s" for n in names)

        sql = _updates[key] = (  # identifiers from the models' metadata, quoted; values are parameters
            f"WITH tok AS (UPDATE {q(ProviderToken._meta.db_table)} "  # noqa: S608  # nosec B608
            f"SET {assignments(ProviderToken, token_fields)}"
            f" WHERE {q(ProviderToken._meta.pk.column)} = %s RETURNING 1)"
            f" UPDATE {q(ProviderConnection._meta.db_table)} SET {assignments(ProviderConnection, connection_fields)}"
            f" WHERE {q(ProviderConnection._meta.pk.column)} = %s AND EXISTS (SELECT 1 FROM tok)"
        )
    params = _values(token, token_fields) + [_pk(token)] + _values(connection, connection_fields) + [_pk(connection)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")


def _values(obj, names: list[str]) -> list:
    out = []
    for name in names:
        field = obj._meta.get_field(name)
        out.append(field.get_db_prep_save(field.pre_save(obj, False), connection=db))
    return out


def _pk(obj):
    return obj._meta.pk.get_db_prep_value(obj.pk, db)
