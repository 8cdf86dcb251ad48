"""POST /v1/lookup's service: equality lookups on allow-listed tables of registered source databases.

The allow-list is ``settings.server.lookup_tables``; each entry is ``source.table`` or ``table`` (a bare
table is looked for in every registered source and must be found in exactly one), optionally followed by
``:col1,col2`` to open only those columns, for filtering and in the rows returned (other columns stay
hidden). Example: ``ALMANAC_SERVER__LOOKUP_TABLES='["shop.bikes", "staff:id,name,team"]'``.

Values are bound parameters, table and column names come from reflection (never from the request text),
reads run in a read-only transaction with ``lookup_timeout_ms`` and at most ``lookup_row_cap`` rows.

A lookup for a key bound to a collection is scoped by `visible(source, table)`: only tables whose rows were
ingested into that collection are open, and the messages name no other source or table (an unknown and a
hidden table get the same 400).

    >>> LookupRule.parse("shop.staff:id,name")
    LookupRule(source='shop', table='staff', columns=('id', 'name'))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from almanac.core.errors import InputError, NotFoundError, SourceError, UnknownTableError
from almanac.core.row_text import INT64_MAX, INT64_MIN
from almanac.core.settings import ServerSettings
from almanac.core.source_db import SourceDatabase


@dataclass(frozen=True, slots=True)
class LookupRule:
    """One allow-list entry."""

    source: str | None
    table: str
    columns: tuple[str, ...] | None

    @classmethod
    def parse(cls, entry: str) -> LookupRule:
        """Parse ``[source.]table[:col,col]``."""
        name, _, columns = entry.strip().partition(":")
        source, _, table = name.rpartition(".")
        cols = tuple(c.strip() for c in columns.split(",") if c.strip()) or None
        if not table:
            raise InputError(f"bad lookup_tables entry {entry!r}; use 'source.table' or 'table[:col,col]'")
        return cls(source or None, table, cols)

    @property
    def name(self) -> str:
        """How the allow-list names it in messages."""
        return f"{self.source}.{self.table}" if self.source else self.table

    def matches(self, source: str | None, table: str) -> bool:
        """True when a request for (source, table) falls under this rule."""
        return self.table == table and (source is None or self.source in (None, source))


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Rows found, with where they came from."""

    source: str
    table: str
    rows: list[dict[str, Any]]
    limit: int


class Sources(Protocol):
    """What lookups need from the server's source registry."""

    def names(self) -> list[str]:
        """Registered source names."""
        ...

    def get(self, name: str) -> SourceDatabase:
        """The open source database `name`."""
        ...


def check_value(column: str, value: object) -> None:
    """InputError for a value no database column can bind: an integer beyond signed 64 bits, text with NUL.

    >>> check_value("id", 2**63)
    Traceback (most recent call last):
    ...
    almanac.core.errors.InputError: value out of range for 'id': integers must lie in -2**63..2**63-1
    """
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise InputError(f"value out of range for {column!r}: integers must lie in -2**63..2**63-1")
    if isinstance(value, str) and "\x00" in value:
        raise InputError(f"value for {column!r} holds a NUL character; remove it")


Visible = Callable[[str, str], bool]  # (source, table) -> may this caller see it


class TableLookup:
    """Checks a lookup against the allow-list (and the caller's scope) and runs it on the table's source."""

    def __init__(self, settings: ServerSettings, sources: Sources, visible: Visible | None = None) -> None:
        self.settings, self.sources, self.visible = settings, sources, visible
        self.rules = [LookupRule.parse(entry) for entry in settings.lookup_tables]

    def allowed(self) -> list[str]:
        """The allow-listed tables, as configured; for a scoped caller only its own `source.table` ones."""
        if self.visible is None:
            return [rule.name for rule in self.rules]
        return [r.name for r in self.rules if r.source is not None and self._sees(r.source, r.table)]

    def lookup(self, table: str, where: Mapping[str, Any], limit: int) -> LookupResult:
        """Rows of an allow-listed table whose columns equal `where` (at most the row cap)."""
        source, _, name = table.rpartition(".")
        rule = next((r for r in self.rules if r.matches(source or None, name)), None)
        named = source or (rule.source if rule else None)
        if rule is None or (named and not self._sees(named, name)):
            raise self._not_open(table)
        for column, value in where.items():
            check_value(column, value)
        db = self._source_of(named or None, name)  # a bare table: only sources the caller sees are tried
        cap = self.settings.lookup_row_cap
        rows = db.lookup(
            name,
            where,
            limit,
            row_cap=cap,
            timeout_ms=self.settings.lookup_timeout_ms,
            allowed_columns=rule.columns,
        )
        if rule.columns is not None:
            rows = [{c: v for c, v in row.items() if c in rule.columns} for row in rows]
        return LookupResult(db.name, name, rows, min(limit, cap))

    def _sees(self, source: str, table: str) -> bool:
        """True when the caller may look up `source.table` (always, for an unscoped caller)."""
        return self.visible is None or self.visible(source, table)

    def _not_open(self, table: str) -> UnknownTableError:
        """The 400 for a table not open to this caller, naming only tables it may use."""
        allowed = ", ".join(self.allowed())
        asked = "that table" if self.visible is not None else f"table {table!r}"  # never echo another's name
        if allowed:
            return UnknownTableError(f"{asked} is not open to lookups; allowed tables: {allowed}")
        if self.visible is not None:
            return UnknownTableError(f"{asked} is not open to lookups for this key's collection")
        return UnknownTableError("no table is open to lookups; list tables in ALMANAC_SERVER__LOOKUP_TABLES")

    def _source_of(self, source: str | None, table: str) -> SourceDatabase:
        """The named source, or the one registered source (visible to the caller) that has `table`."""
        if source is not None:
            return self.sources.get(source)
        holders = []
        for name in self.sources.names():
            if not self._sees(name, table):
                continue
            try:
                db = self.sources.get(name)
                db.check_table(table)
            except (SourceError, NotFoundError):
                continue
            holders.append(db)
        if not holders:
            raise UnknownTableError(
                f"no registered source has table {table!r}; register its database with "
                "`almanac ingest-db URL --table ...` or name it as 'source.table' in lookup_tables"
            )
        if len(holders) > 1:
            names = ", ".join(f"{db.name}.{table}" for db in holders)
            raise InputError(f"table {table!r} is in several sources; ask for one of: {names}")
        return holders[0]
