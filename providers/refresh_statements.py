"""The token refresh's claim lock, written out once for PostgreSQL.

Every connection is refreshed about every half hour, so this is one of the app's most
frequent statements. Through the ORM, the lock (a ``SELECT ... FOR UPDATE OF`` the
token, joined to its connection and user) was compiled again on every refresh. Here the
SQL is built once per process from the models' metadata, and the rows become model
instances through ``Model.from_db`` (what the ORM does).

Same rows, same lock, same values as the ORM path, which other databases (SQLite in
tests, where ``select_for_update`` does nothing) keep using, as does any process where
something listens for the models' save signals.

(The refresh's write used to be one statement here too, updating the token before the
connection. It now goes through the ORM, connection first: every provider write takes
the connection's lock before the token's, so a refresh can never deadlock with a revoke.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
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
