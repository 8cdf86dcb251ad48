"""Row lookups: questions about a database row's attributes, built from the row's text with no teacher.

Rows are rendered by the indexer as ``table: bikes | id: 3 | name: Trail 29`` (or ``bikes | id: 3 | ...``).
The row is named by its most readable key (name, title, label, else the first column):

    >>> row = parse_row("bikes | id: 3 | name: Trail 29 | weight_kg: 12.5")
    >>> row.table, row.key, [q for _, q, _ in row.questions()]
    ('bikes', ('name', 'Trail 29'), ['What is the id of the bikes with name Trail 29?', \
'What is the weight_kg of the bikes with name Trail 29?'])
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from almanac.core.prompt import origin_of
from almanac.core.types import ChunkRecord
from almanac.finetune.records import QARecord, SourceRef

_NAME_COLUMNS = ("name", "title", "label")
MAX_VALUE_CHARS = 200  # long free-text cells make poor lookup answers


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """A row's table, the (column, value) that names it, and its other attributes."""

    table: str
    key: tuple[str, str]
    attributes: tuple[tuple[str, str], ...]

    def questions(self) -> list[tuple[str, str, str]]:
        """(attribute, question, answer) for every attribute with a usable value."""
        col, val = self.key
        return [
            (name, f"What is the {name} of the {self.table} with {col} {val}?", value)
            for name, value in self.attributes
            if value.strip() and len(value) <= MAX_VALUE_CHARS
        ]


def parse_row(text: str) -> ParsedRow | None:
    """Parse a rendered row; None when the text is not in the row format."""
    parts = [p.strip() for p in text.split(" | ")]
    if len(parts) < 3:
        return None
    head, fields = parts[0], parts[1:]
    table = head.split(":", 1)[1].strip() if head.lower().startswith("table:") else head
    pairs = [tuple(p.split(":", 1)) for p in fields if ":" in p]
    columns = [(c.strip(), v.strip()) for c, v in pairs if c.strip()]
    if not table or len(columns) < 2:
        return None
    by_name = {c.lower(): (c, v) for c, v in columns}
    key = next((by_name[n] for n in _NAME_COLUMNS if n in by_name and by_name[n][1]), columns[0])
    attributes = tuple(pair for pair in columns if pair != key)
    return ParsedRow(table, key, attributes)


def row_records(chunk: ChunkRecord, n: int, rng: random.Random) -> list[QARecord]:
    """Up to `n` lookup records for a row chunk, attributes chosen with `rng`; [] for a non-row text."""
    row = parse_row(chunk.text)
    if row is None:
        return []
    questions = row.questions()
    picked = sorted(rng.sample(range(len(questions)), min(n, len(questions))))
    gold = SourceRef(chunk.id, origin_of(chunk.source, chunk.locator), chunk.text)
    col, val = row.key
    records = []
    for index in picked:
        attribute, question, answer = questions[index]
        rationale = f"The {row.table} row with {col} {val} lists {attribute} as {answer}."
        record = QARecord(
            "row", question, answer, rationale, chunk.id, chunk.document_id, chunk.source, chunk.text, (gold,)
        )
        records.append(record)
    return records
