"""The guard for the chat model's tool calls: /v1/lookup's allow-list, scope, bound values, read-only
transaction, timeout and row cap, plus count/min/max over the same allow-listed tables and columns.

    tools = LookupTools(settings.server, sources, partial(catalog.holds_rows, "shop"))
    tools.tables()                        # [TableSpec('shop.bikes', ('id', 'name', 'colour'))]
    outcome = tools.run('<tool_call>{"name": "count", "arguments": {"table": "shop.bikes"}}</tool_call>')
    outcome.as_json()                     # {"name": "count", ..., "ok": True, "value": 2}

A call that fails validation (not JSON, an unknown tool or argument, an off-list table or column, a value no
column can bind) is refused with the reason and never reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from almanac.core.errors import AlmanacError
from almanac.core.lookup_tool import TableSpec, ToolCall, parse_call
from almanac.core.row_text import render_row
from almanac.core.source_db import SourceDatabase
from almanac.core.table_aggregate import aggregate
from almanac.core.types import Hit, RowKey
from almanac.server.retrieval.table_lookup import LookupRule, TableLookup, check_value


@dataclass(slots=True)
class ToolOutcome:
    """One call as the response lists it: what was asked, and the rows or value returned, or why not."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    error: str | None = None
    source: str | None = None
    table: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    value: Any = None
    hits: list[Hit] = field(default_factory=list)  # the rows as sources of kind "row"

    def as_json(self) -> dict[str, Any]:
        """The response's view of the call (and what the model is shown)."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "error": self.error,
            "source": self.source,
            "table": self.table,
            "rows": self.rows,
            "value": self.value,
        }


class LookupTools(TableLookup):
    """Runs validated tool calls through /v1/lookup's guard (this class is that guard, extended)."""

    def tables(self) -> list[TableSpec]:
        """The tables open to the caller with their columns; none open: no tools are offered."""
        specs = []
        for rule in self.rules:
            if rule.source is None or not self._sees(rule.source, rule.table):
                continue  # scoped callers see only `source.table` entries (TableLookup.allowed)
            try:
                columns = self.sources.get(rule.source).check_table(rule.table).columns
            except AlmanacError:
                continue  # a source that is gone offers no tool
            open_columns = [c for c in columns if rule.columns is None or c in rule.columns]
            specs.append(TableSpec(rule.name, tuple(open_columns)))
        return specs

    def run(self, reply: str) -> ToolOutcome | None:
        """Parse, validate and run the reply's tool call; None when the reply makes none."""
        try:
            call = parse_call(reply)
        except AlmanacError as exc:
            return ToolOutcome("invalid", {}, ok=False, error=str(exc))
        if call is None:
            return None
        arguments = call.arguments.model_dump(exclude_defaults=True)
        try:
            return self.execute(call)
        except AlmanacError as exc:
            return ToolOutcome(call.name, arguments, ok=False, error=str(exc))

    def execute(self, call: ToolCall) -> ToolOutcome:
        """Run a validated call; AlmanacError (nothing run) for an off-list table, column or value."""
        args = call.arguments
        shown = args.model_dump(exclude_defaults=True)
        if call.name == "lookup":
            found = self.lookup(args.table, args.where, args.limit)
            db = self.sources.get(found.source)
            hits = [self._hit(db, found.table, row) for row in found.rows]
            return ToolOutcome(
                call.name, shown, True, None, found.source, found.table, found.rows, None, hits
            )
        rule, db, name = self._resolve(args.table)
        for column, value in args.where.items():
            check_value(column, value)
        value = aggregate(
            db,
            name,
            call.name,
            args.column,
            args.where,
            timeout_ms=self.settings.lookup_timeout_ms,
            allowed_columns=rule.columns,
        )
        return ToolOutcome(call.name, shown, True, None, db.name, name, [], value)

    def _resolve(self, table: str) -> tuple[LookupRule, SourceDatabase, str]:
        """The rule, source and bare name for `table`, as TableLookup.lookup resolves them."""
        source, _, name = table.rpartition(".")
        rule = next((r for r in self.rules if r.matches(source or None, name)), None)
        named = source or (rule.source if rule else None)
        if rule is None or (named and not self._sees(named, name)):
            raise self._not_open(table)
        return rule, self._source_of(named or None, name), name

    @staticmethod
    def _hit(db: SourceDatabase, table: str, row: dict[str, Any]) -> Hit:
        """A returned row as a source of kind "row" (id 0: it was read live, not retrieved)."""
        key = db.check_table(table).primary_key
        address = (
            RowKey(db.name, table, tuple((k, row[k]) for k in key)).uri()
            if all(k in row for k in key)
            else f"db://{db.name}/{table}/"  # the key columns are hidden by the allow-list
        )
        return Hit(0, 1.0, render_row(table, row), address, "", "row")
