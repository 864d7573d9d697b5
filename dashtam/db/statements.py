"""Hand-written SQL: one small mechanism for the few statements the ORM is too slow to build.

A handful of statements on hot paths (the refresh rotation, the login's reads, the audit
INSERT, the provider refresh's lock) are written out by hand, because compiling them
through the ORM on every call cost more CPU than the database took to answer. Each
statement's text stays beside the service that runs it; what they share lives here:

- ``Statement``: built once per database alias (and per variant, such as a row count),
  from a builder that receives the connection; ``usable(using)`` is the one gate that
  says whether the hand-written path may run there. It checks the database (a vendor,
  or a feature flag for portable SQL) and that nobody listens for the save signals of
  the models whose rows the statement writes without ``Model.save()`` (the ORM path,
  which sends them, runs instead). Each statement names those models: a read names none.
- ``Table``: a model's table and columns, quoted by the connection. Identifiers are
  always taken from ``Model._meta``, never typed by hand; every value is a bound parameter.

Every statement has an ORM path (the fallback, or, for a portable read, the query it
stands for) and a test that runs both on equal fixtures and compares the rows
(``tests/db_equivalence.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

T = TypeVar("T")

ModelRef = type[Model] | str  # a model class, or "app_label.ModelName" (resolved when first needed)

_registry: list[Statement[Any]] = []


def _resolve(ref: ModelRef) -> type[Model]:
    return apps.get_model(ref) if isinstance(ref, str) else ref


class Table:
    """A model's table and its columns, quoted for one connection.

    ``t.name`` is the quoted table name; ``t.ref`` is what a FROM clause names (with
    the alias, when there is one). ``t.<field>`` is the quoted column of a field (by
    name or attname), qualified by the alias when there is one (``t.qualified(field)``
    says the same for a field that shares its name with an attribute of this class);
    ``t.column(field)`` is the bare column, for SET and INSERT lists.
    """

    def __init__(self, model: type[Model], connection: BaseDatabaseWrapper, alias: str | None = None) -> None:
        self.model = model
        self.alias = alias
        self._quote: Callable[[str], str] = connection.ops.quote_name
        self.name = self._quote(model._meta.db_table)
        self.ref = f"{self.name} AS {alias}" if alias else self.name

    def field(self, name: str) -> Field[Any, Any]:
        field = self.model._meta.get_field(name)
        if not isinstance(field, Field) or not field.concrete:
            raise ValueError(f"{self.model.__name__}.{name} is not a column")
        return field

    def column(self, name: str) -> str:
        """The quoted column of field ``name``, unqualified."""
        return self._quote(self.field(name).column)

    def qualified(self, name: str) -> str:
        """The quoted column of field ``name``, qualified by the alias when there is one."""
        column = self.column(name)
        return f"{self.alias}.{column}" if self.alias else column

    @property
    def pk(self) -> str:
        pk = self.model._meta.pk
        assert pk is not None  # every concrete model has one
        return self.qualified(pk.name)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.qualified(name)


class Statement(Generic[T]):
    """One hand-written statement: its gate and its per-alias cache of built texts.

    ``build(connection, *variant)`` returns the text (or a small plan holding texts);
    it runs once per alias and variant. ``vendors``: the databases the text is written
    for (None: any database that has every feature in ``features``). ``writes_without_save``:
    the models whose rows the statement writes without ``Model.save()``; while anything
    listens for their ``pre_save`` / ``post_save``, the statement is not usable.
    """

    def __init__(self, name: str, build: Callable[..., T], *, vendors: Iterable[str] | None = ("postgresql",),
                 features: Iterable[str] = (), writes_without_save: Iterable[ModelRef] = ()) -> None:
        self.name = name
        self._build = build
        self.vendors = None if vendors is None else frozenset(vendors)
        self.features = tuple(features)
        self._signal_refs = tuple(writes_without_save)
        self._signal_models: tuple[type[Model], ...] | None = None
        self._built: dict[tuple[Hashable, ...], T] = {}
        _registry.append(self)

    def __repr__(self) -> str:
        return f"<Statement {self.name}>"

    def _models(self) -> tuple[type[Model], ...]:
        if self._signal_models is None:
            self._signal_models = tuple(_resolve(ref) for ref in self._signal_refs)
        return self._signal_models

    def usable(self, using: str | None = None) -> bool:
        """Whether the hand-written path may run on database ``using`` (default: the default one)."""
        db = connections[using or DEFAULT_DB_ALIAS]
        if self.vendors is not None and db.vendor not in self.vendors:
            return False
        if not all(getattr(db.features, feature) for feature in self.features):
            return False
        return not any(signal.has_listeners(model) for model in self._models() for signal in (pre_save, post_save))

    def get(self, using: str | None = None, *variant: Hashable) -> T:
        """The statement built for database ``using`` (and ``variant``), built on first use."""
        alias = using or DEFAULT_DB_ALIAS
        key = (alias, *variant)
        built = self._built.get(key)
        if built is None:
            # Two threads may both build it once; they build the same thing.
            built = self._built[key] = self._build(connections[alias], *variant)
        return built

    def forget(self) -> None:
        """Drop the built texts (tests that change a database's settings)."""
        self._built.clear()


def statements() -> tuple[Statement[Any], ...]:
    """Every hand-written statement defined so far (for checks and tests)."""
    return tuple(_registry)


def forget_all() -> None:
    for statement in _registry:
        statement.forget()
