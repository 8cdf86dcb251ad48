"""API-call examples (Gorilla, ToolLLM): questions over allow-listed tables that one retrieved row cannot
answer (counts, ranges, "which ... has the highest ..."), each with the correct tool call and final answer.

The answers are computed here from the rows as read; curation then executes every call through the source's
read-only lookup and aggregate (core/table_aggregate.py) and keeps only the calls whose result holds that
answer, as ToolLLM filters calls that do not work. A record's target is the call (the reply the adapter
learns), its `tools` the schemas the prompt offers, its context one row of the table (what retrieval shows):

    examples = ToolCallExamples(db, [TableSpec("shop.bikes", ("id", "name", "colour", "weight_kg"))])
    records = examples.curate(examples.generate(per_table=20, rng=random.Random(0)))
    grades = grade_calls(chat, held_out, adapter="tools")   # calls formed, with the right tool, exact
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.errors import AlmanacError
from almanac.core.lookup_tool import TableSpec, ToolArguments, ToolCall, offer_tools, parse_call, tool_schemas
from almanac.core.ports import ChatModel
from almanac.core.prompt import build_answer_messages
from almanac.core.row_text import render_row
from almanac.core.source_db import SourceDatabase
from almanac.core.table_aggregate import aggregate
from almanac.finetune.records import QARecord, SourceRef, read_records, write_records

_ROWS_READ = 1000  # rows per table the questions are drawn from
_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class Example:
    """A question, the call that answers it and the answer computed from the rows."""

    question: str
    call: ToolCall
    answer: str
    spec: TableSpec
    row: dict[str, Any]  # a row of the table: the context a retriever would show


def _call(name: str, table: str, **arguments: Any) -> ToolCall:
    return ToolCall(name=name, arguments=ToolArguments(table=table, **arguments))  # type: ignore[arg-type]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ToolCallExamples:
    """Generates and curates API-call records for the allow-listed tables of one source database."""

    def __init__(self, db: SourceDatabase, tables: Sequence[TableSpec]) -> None:
        self.db, self.tables = db, list(tables)
        self.schemas = tool_schemas(self.tables)

    def generate(self, per_table: int, rng: random.Random) -> list[Example]:
        """Up to `per_table` examples per table, drawn with `rng` from every question the rows support."""
        examples: list[Example] = []
        for spec in self.tables:
            rows = self._rows(spec)
            found = self._questions(spec, rows, rng) if rows else []
            examples.extend(rng.sample(found, min(per_table, len(found))))
        return examples

    def _rows(self, spec: TableSpec) -> list[dict[str, Any]]:
        name = spec.name.rpartition(".")[2]
        rows = self.db.lookup(name, {}, _ROWS_READ, row_cap=_ROWS_READ, timeout_ms=_TIMEOUT_MS)
        return [{c: row[c] for c in spec.columns if c in row} for row in rows]

    def _questions(self, spec: TableSpec, rows: list[dict[str, Any]], rng: random.Random) -> list[Example]:
        """Counts by value, highest and lowest of numeric columns, and which rows hold a value (no counts
        over a column whose values are all distinct)."""
        plural, out = spec.name.rpartition(".")[2], []
        label = next((c for c in ("name", "title", "label") if c in spec.columns), spec.columns[0])
        for column in spec.columns:
            values = [row[column] for row in rows if row.get(column) is not None]
            if values and all(_number(v) for v in values):
                top = max(rows, key=lambda r: float(r[column]) if _number(r.get(column)) else float("-inf"))
                out.append(
                    Example(
                        f"What is the highest {column} among the {plural}?",
                        _call("max", spec.name, column=column),
                        str(max(values)),
                        spec,
                        rng.choice(rows),
                    )
                )
                q = f"What is the lowest {column} among the {plural}?"
                out.append(Example(q, _call("min", spec.name, column=column), str(min(values)), spec, top))
            counts = Counter(v for v in values if isinstance(v, str))
            if len(counts) == len(values):
                continue  # every value differs (names, codes): "how many have name X?" is always 1
            for value, n in counts.items():
                where = {column: value}
                q = f"How many {plural} have {column} {value}?"
                out.append(Example(q, _call("count", spec.name, where=where), str(n), spec, rng.choice(rows)))
                if column != label and 1 < n <= 5:
                    names = ", ".join(str(r[label]) for r in rows if r.get(column) == value)
                    q = f"Which {plural} have {column} {value}?"
                    out.append(Example(q, _call("lookup", spec.name, where=where), names, spec, rows[0]))
        return out

    def result(self, example: Example) -> dict[str, Any] | None:
        """Run the call against the database: the result as the server's tool loop shows it to the model
        (server/retrieval/lookup_tools.py), or None when the call fails or its result lacks the answer."""
        args = example.call.arguments
        table = args.table.rpartition(".")[2]
        shown = {"name": example.call.name, "ok": True, "error": None, "source": self.db.name, "table": table}
        try:
            if example.call.name == "lookup":
                rows = self.db.lookup(table, args.where, args.limit, row_cap=100, timeout_ms=_TIMEOUT_MS)
                rows = [{c: row[c] for c in example.spec.columns if c in row} for row in rows]
                found = {str(v) for row in rows for v in row.values()}
                works = all(part in found for part in example.answer.split(", "))
                return {**shown, "rows": rows, "value": None} if works else None
            value = aggregate(
                self.db, table, example.call.name, args.column, args.where, timeout_ms=_TIMEOUT_MS
            )
        except AlmanacError:
            return None
        works = value is not None and str(value) == example.answer
        return {**shown, "rows": [], "value": value} if works else None

    def curate(self, examples: Sequence[Example]) -> list[QARecord]:
        """The examples whose call works, as records with the call's result (deduplicated by question)."""
        kept: dict[str, QARecord] = {}
        for example in examples:
            if example.question not in kept and (result := self.result(example)) is not None:
                kept[example.question] = self.record(example, result)
        return list(kept.values())

    def record(self, example: Example, result: dict[str, Any] | None = None) -> QARecord:
        """The training record: target = the call, context = one row as retrieval would show it, and the
        call's result (the answer row trains reading it: finetune/training_set.py)."""
        origin = f"db://{self.db.name}/{example.spec.name.rpartition('.')[2]}"
        text = render_row(example.spec.name.rpartition(".")[2], example.row)
        ref = SourceRef(0, origin, text)
        rationale = f"Found with {example.call.name} on {example.spec.name}."
        return QARecord(
            "tool_call",
            example.question,
            example.answer,
            rationale,
            0,
            0,
            origin,
            text,
            (ref,),
            target=example.call.render(),
            tools=json.dumps(self.schemas),
            tool_result=json.dumps(result, default=str) if result is not None else "",
        )


def offered_messages(record: QARecord) -> list[Any]:
    """The prompt the server sends for a tool-call record: sources, question and the tools offered."""
    return offer_tools(build_answer_messages(record.question, record.sources()), json.loads(record.tools))


@dataclass(frozen=True, slots=True)
class CallGrades:
    """How a model's first replies to held-out API-call prompts compare with the gold calls."""

    asked: int
    formed: int  # a tool call that parses
    right_tool: int  # the gold call's tool on the gold call's table
    exact: int  # the gold call: same tool and arguments


def grade_calls(chat: ChatModel, records: Sequence[QARecord], adapter: str | None = None) -> CallGrades:
    """Ask each record's prompt (tools offered) once and grade the reply's call against the record's."""
    formed = right_tool = exact = 0
    for record in records:
        reply = chat.complete(offered_messages(record), 96, adapter).text
        try:
            made, gold = parse_call(reply), parse_call(record.target)
        except AlmanacError:
            continue  # a malformed call is a wrong one
        if made is None or gold is None:
            continue
        formed += 1
        right_tool += (made.name, made.arguments.table) == (gold.name, gold.arguments.table)
        exact += made == gold
    return CallGrades(len(records), formed, right_tool, exact)


def append_examples(
    folder: Mapping[str, Path],
    sources: Mapping[str, str],
    lookup_tables: Sequence[str],
    per_table: int,
    seed: int = 0,
) -> int:
    """Add API-call records for the ``source.table[:cols]`` entries of the allow-list to the `train` and
    `validation` files of `folder` (one in five held out); returns how many were added. Bare-table entries
    are skipped: name them ``source.table`` to train on them."""
    rng, records = random.Random(seed), []
    by_source: dict[str, list[tuple[str, set[str]]]] = {}
    for entry in lookup_tables:
        name, _, cols = entry.strip().partition(":")
        source, _, table = name.rpartition(".")
        if source in sources:
            by_source.setdefault(source, []).append(
                (table, {c.strip() for c in cols.split(",") if c.strip()})
            )
    for source, tables in by_source.items():
        db = SourceDatabase(source, sources[source])
        try:
            specs = [
                TableSpec(
                    f"{source}.{table}",
                    tuple(c for c in db.check_table(table).columns if c in cols or not cols),
                )
                for table, cols in tables
            ]
            examples = ToolCallExamples(db, specs)  # offered together, as the server offers a source's tables
            records.extend(examples.curate(examples.generate(per_table, rng)))
        finally:
            db.close()
    held = [r for i, r in enumerate(records) if i % 5 == 0]
    kept = [r for i, r in enumerate(records) if i % 5]
    for split, chosen in (("train", kept), ("validation", held)):
        path = folder[split]
        write_records(path, [*(read_records(path) if path.is_file() else []), *chosen])
    return len(records)
