"""The providers' hand-written SQL (PostgreSQL): the token refresh's claim lock, and the
KEY SHARE lock on a user row that every provider write takes first.

Every connection is refreshed about every half hour, so the claim lock is one of the app's
most frequent statements. Through the ORM, the lock (a ``SELECT ... FOR UPDATE OF`` the
token, joined to its connection and user) was compiled again on every refresh. Here the
SQL is built once per database (``dashtam.db.statements``) from the models' metadata, and
the rows become model instances through ``Model.from_db`` (what the ORM does).

Same rows, same lock, same values as the ORM path, which other databases keep using
(SQLite in tests, where ``select_for_update`` does nothing; tests compare both).
Both statements only read and lock: they bypass no save signal.

(The refresh's write used to be one statement here too, updating the token before the
connection. It now goes through the ORM, connection first: every provider write takes
the connection's lock before the token's, so a refresh can never deadlock with a revoke.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection as db

from dashtam.db.statements import Statement, Table
from providers.models import ProviderConnection, ProviderToken


@dataclass(frozen=True)
class _Plan:
    skip_locked_sql: str
    wait_sql: str
    # (model, attnames, converters by position or None) for token, connection, user
    models: tuple
    connection_id_field: object


def _converters(field, alias: str, connection):
    col = field.get_col(alias)
    found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
    return (col, found) if found else None


def _lock_plan(connection) -> _Plan:
    t = Table(ProviderToken, connection, "t")
    c = Table(ProviderConnection, connection, "c")
    u = Table(get_user_model(), connection, "u")
    columns, models = [], []
    for table in (t, c, u):
        fields = table.model._meta.concrete_fields
        columns += [table.qualified(f.name) for f in fields]
        models.append((table.model, [f.attname for f in fields],
                       [_converters(f, table.alias, connection) for f in fields]))
    connection_fk = ProviderToken._meta.get_field("connection")
    user_fk = ProviderConnection._meta.get_field("user")
    # Identifiers from the models' metadata, quoted; every value is a parameter.
    base = (
        f"SELECT {', '.join(columns)} FROM {t.ref}"  # noqa: S608  # nosec B608
        f" JOIN {c.ref} ON {c.qualified(connection_fk.target_field.name)} = {t.connection}"
        f" JOIN {u.ref} ON {u.qualified(user_fk.target_field.name)} = {c.user}"
        f" WHERE {t.connection} = %s FOR UPDATE OF t"
    )
    return _Plan(base + " SKIP LOCKED", base, tuple(models), connection_fk)


LOCK_TOKEN = Statement("providers.lock_token", _lock_plan)


def supported() -> bool:
    """Whether the refresh may use ``lock_token`` here (``LOCK_TOKEN.usable``)."""
    return LOCK_TOKEN.usable(db.alias)


def lock_token(connection_id, *, wait: bool) -> ProviderToken | None:
    """The connection's token row, locked for this transaction, with ``token.connection``
    and ``token.connection.user`` loaded; None when there is none or (unless ``wait``)
    another transaction holds its lock. PostgreSQL only (see ``supported``)."""
    plan = LOCK_TOKEN.get(db.alias)
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


def _user_key_share_sql(connection) -> str:
    user = Table(get_user_model(), connection)
    # Identifiers from the model's metadata, quoted; the id is a parameter.
    return f"SELECT 1 FROM {user.ref} WHERE {user.pk} = %s FOR KEY SHARE"  # noqa: S608  # nosec B608


USER_KEY_SHARE = Statement("providers.user_key_share", _user_key_share_sql)


def user_key_share(user_id) -> None:
    """Take a KEY SHARE lock on the user row for this transaction; nothing where the
    statement is not usable (SQLite has no row locks)."""
    if user_id is None or not USER_KEY_SHARE.usable(db.alias):
        return
    value = get_user_model()._meta.pk.get_db_prep_value(user_id, db)
    with db.cursor() as cursor:
        cursor.execute(USER_KEY_SHARE.get(db.alias), [value])

