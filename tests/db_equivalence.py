"""The ORM-equivalence check for hand-written SQL (``dashtam.db.statements``).

Every hand-written statement has an ORM path: the fallback its service takes where the
statement is not usable, or, for a portable read, the query it stands for. A test runs
both on equal fixtures and compares what they leave in the tables and what they return::

    raw, orm = assert_same_rows(
        fixture=make_rows,                       # builds the same rows each time (fixed ids)
        raw=lambda rows: service(...),           # the hand-written path
        orm=lambda rows: service_via_orm(...),   # the ORM path (see ``orm_path``)
        models=[Session, AuditEvent],            # whose rows to compare afterwards
        ignore={AuditEvent: ["id", "created_at", "row_hash"]},  # ids, clocks and random values
    )

Each run happens in its own transaction, rolled back afterwards, so the second run finds
exactly the database the first one found.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Model

from dashtam.db.statements import Statement


@dataclass(frozen=True)
class Run:
    result: Any
    rows: dict[str, list[dict[str, Any]]]


class _Undo(Exception):
    pass


def rows_of(models: Iterable[type[Model]], ignore: Mapping[type[Model], Iterable[str]] | None = None,
            ) -> dict[str, list[dict[str, Any]]]:
    """Every row of each model (its concrete columns but the ignored ones), in primary-key order."""
    ignore = ignore or {}
    found = {}
    for model in models:
        skip = set(ignore.get(model, ()))
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip and f.name not in skip]
        found[model._meta.label] = list(model._base_manager.order_by("pk").values(*names))
    return found


def run_in_rollback(*, fixture: Callable[[], Any], path: Callable[[Any], Any], models: Iterable[type[Model]],
                    ignore: Mapping[type[Model], Iterable[str]] | None = None) -> Run:
    """Build the fixture, run ``path`` on it and read the rows, then roll all of it back."""
    outcome: list[Run] = []
    with contextlib.suppress(_Undo), transaction.atomic():
        built = fixture()
        result = path(built)
        outcome.append(Run(result=result, rows=rows_of(models, ignore)))
        raise _Undo
    return outcome[0]


def assert_same_rows(*, fixture: Callable[[], Any], raw: Callable[[Any], Any], orm: Callable[[Any], Any],
                     models: Iterable[type[Model]], ignore: Mapping[type[Model], Iterable[str]] | None = None,
                     ) -> tuple[Run, Run]:
    """Run the hand-written path and the ORM path on equal fixtures; their rows must be equal.

    Returns both runs, for assertions on what each returned.
    """
    models = list(models)
    by_raw = run_in_rollback(fixture=fixture, path=raw, models=models, ignore=ignore)
    by_orm = run_in_rollback(fixture=fixture, path=orm, models=models, ignore=ignore)
    assert by_raw.rows == by_orm.rows, _difference(by_raw.rows, by_orm.rows)
    assert any(by_raw.rows.values()), "the fixture left no rows to compare"
    return by_raw, by_orm


def _difference(raw: dict[str, list[dict[str, Any]]], orm: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["the hand-written path and the ORM path left different rows:"]
    for label in raw:
        if len(raw[label]) != len(orm[label]):
            lines.append(f"  {label}: {len(raw[label])} rows by SQL, {len(orm[label])} by the ORM")
        for by_sql, by_orm in zip(raw[label], orm[label], strict=False):
            for column in by_sql:
                if by_sql[column] != by_orm.get(column):
                    lines.append(f"  {label}.{column}: {by_sql[column]!r} by SQL, {by_orm.get(column)!r} by the ORM")
    return "\n".join(lines)


@contextlib.contextmanager
def orm_path(*statements: Statement[Any]) -> Iterator[None]:
    """Within the block, the statements are not usable: their services take the ORM path."""
    saved = [statement.__dict__.get("usable") for statement in statements]
    for statement in statements:
        statement.usable = lambda using=None: False  # type: ignore[method-assign]  # a test switch
    try:
        yield
    finally:
        for statement, before in zip(statements, saved, strict=True):
            if before is None:
                del statement.usable
            else:
                statement.usable = before  # type: ignore[method-assign]


def with_orm_path(*statements: Statement[Any]) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """``path`` run with ``statements`` switched off (see ``orm_path``)."""

    def wrap(path: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(built: Any) -> Any:
            with orm_path(*statements):
                return path(built)

        return run

    return wrap
