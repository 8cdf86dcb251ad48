"""POST /v1/lookup's service: equality lookups on allow-listed tables of registered source databases.

The allow-list is ``settings.server.lookup_tables``; each entry is ``source.table`` or ``table`` (a bare
table is looked for in every registered source and must be found in exactly one), optionally followed by
``:col1,col2`` to open only those columns, for filtering and in the rows returned (other columns stay
hidden). Example: ``ALMANAC_SERVER__LOOKUP_TABLES='["shop.bikes", "staff:id,name,team"]'``.

Values are bound parameters, table and column names come from reflection (never from the request text),
reads run in a read-only transaction with ``lookup_timeout_ms`` and at most ``lookup_row_cap`` rows.

    >>> LookupRule.parse("shop.staff:id,name")
    LookupRule(source='shop', table='staff', columns=('id', 'name'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from almanac.core.errors import InputError, NotFoundError, SourceError, UnknownTableError
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


class TableLookup:
    """Checks a lookup against the allow-list and runs it on the table's source."""

    def __init__(self, settings: ServerSettings, sources: Sources) -> None:
        self.settings, self.sources = settings, sources
        self.rules = [LookupRule.parse(entry) for entry in settings.lookup_tables]

    def allowed(self) -> list[str]:
        """The allow-listed tables, as configured."""
        return [rule.name for rule in self.rules]

    def lookup(self, table: str, where: Mapping[str, Any], limit: int) -> LookupResult:
        """Rows of an allow-listed table whose columns equal `where` (at most the row cap)."""
        source, _, name = table.rpartition(".")
        rule = next((r for r in self.rules if r.matches(source or None, name)), None)
        if rule is None:
            allowed = ", ".join(self.allowed())
            raise UnknownTableError(
                f"table {table!r} is not open to lookups; allowed tables: {allowed}"
                if allowed
                else "no table is open to lookups; list tables in ALMANAC_SERVER__LOOKUP_TABLES"
            )
        db = self._source_of(source or rule.source, name)
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

    def _source_of(self, source: str | None, table: str) -> SourceDatabase:
        """The named source, or the one registered source that has `table`."""
        if source is not None:
            return self.sources.get(source)
        holders = []
        for name in self.sources.names():
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
