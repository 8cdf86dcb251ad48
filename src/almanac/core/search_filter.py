"""Metadata filters for search: which chunks a query may return, applied inside the search (not after a
top-k cut), so a filtered query still returns top_k hits when that many chunks pass.

A filter resolves to the sorted ids of the chunks that pass it, read from the catalog; the dense index
searches with a FAISS ID selector over those ids and the lexical index masks its scores with them.

Row fields match as text: the indexer stores each scalar column of a row as the row's text shows it
(`field_text`), and a filter value goes through the same function, so ``weight_kg=12.5`` matches the row
rendered ``weight_kg: 12.5``.

    >>> where = SearchFilter.of(kind="row", table="bikes", fields={"weight_kg": 12.5, "color": "red"})
    >>> where.fields
    (('color', 'red'), ('weight_kg', '12.5'))
    >>> SearchFilter.of(fields={}) is None  # no condition at all: search unfiltered
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import numpy as np
from sqlalchemy import ColumnElement, and_, func, select

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import ChunkRow, DocumentRow
from almanac.core.errors import InputError

FIELDS_MAX = 16  # key=value conditions in one filter
FIELD_KEY_MAX = 64  # characters of a column name that can be filtered on
FIELD_VALUE_MAX = 256  # characters of a value; longer column values are not captured (they match nothing)
ROW_FIELDS_MAX = 64  # columns of a row captured at ingest
PREFIX_MAX = 2048  # as long as a stored source
TABLE_MAX = 128
_ROW_SCHEME = "db://"  # row sources: db://SOURCE/TABLE/key (core.types.RowKey.uri)


def field_text(value: object) -> str | None:
    """The text a column value is stored and matched as: what the row's text shows (core.row_text), or None
    for what no filter matches (null, binary, JSON objects and lists, text over FIELD_VALUE_MAX).

    >>> field_text(12.5), field_text("Trail  29"), field_text(Decimal("7.900")), field_text(None)
    ('12.5', 'Trail 29', '7.9', None)
    """
    if value is None or isinstance(value, bytes | bytearray | memoryview | dict | list | tuple | set):
        return None
    text = format(value.normalize(), "f") if isinstance(value, Decimal) else " ".join(str(value).split())
    return text if len(text) <= FIELD_VALUE_MAX else None


def _usable_key(key: str) -> bool:
    # SQLite and MariaDB JSON paths quote a key as $."key", with no escapes: no quotes, backslashes, controls
    return 0 < len(key) <= FIELD_KEY_MAX and not any(c in '"\\' or ord(c) < 32 for c in key)


def row_fields(row: Mapping[str, object]) -> dict[str, str]:
    """A row's filterable column values (`field_text`), at most ROW_FIELDS_MAX columns, in column order.

    >>> row_fields({"id": 3, "name": "Trail 29", "photo": b"...", "note": None})
    {'id': '3', 'name': 'Trail 29'}
    """
    fields: dict[str, str] = {}
    for column, value in row.items():
        if len(fields) == ROW_FIELDS_MAX:
            break
        text = field_text(value)
        if text is not None and _usable_key(column):
            fields[column] = text
    return fields


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Conditions a hit must meet, all of them (AND); None or empty means no condition.

    `ingested_after` (inclusive) and `ingested_before` (exclusive) compare with the ingest time of the
    document's current version; naive datetimes mean UTC. `fields` are (column, value) pairs a row must
    hold, kept sorted so equal filters compare (and hash) equal. A filter that cannot be right raises
    InputError saying what to change.
    """

    kind: Literal["document", "row"] | None = None
    source_prefix: str | None = None
    table: str | None = None
    ingested_after: datetime | None = None
    ingested_before: datetime | None = None
    fields: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_kind(self.kind, self.table, self.fields)
        _check_text("source_prefix", self.source_prefix, PREFIX_MAX)
        _check_text("table", self.table, TABLE_MAX)
        if self.table is not None and "/" in self.table:
            raise InputError(f"filter table {self.table!r} contains '/'; give the table name alone")
        after, before = _utc(self.ingested_after), _utc(self.ingested_before)
        if after is not None and before is not None and after >= before:
            raise InputError(
                f"filter ingested_after ({after.isoformat()}) is not earlier than ingested_before "
                f"({before.isoformat()}); swap them or widen the range"
            )
        object.__setattr__(self, "ingested_after", after)
        object.__setattr__(self, "ingested_before", before)
        object.__setattr__(self, "fields", _check_fields(self.fields))

    @classmethod
    def of(
        cls,
        *,
        kind: Literal["document", "row"] | None = None,
        source_prefix: str | None = None,
        table: str | None = None,
        ingested_after: datetime | None = None,
        ingested_before: datetime | None = None,
        fields: Mapping[str, object] | Iterable[tuple[str, object]] = (),
    ) -> SearchFilter | None:
        """The filter, with field values of any scalar type turned into text (`field_text`); None when it
        sets no condition, so callers search unfiltered."""
        items = fields.items() if isinstance(fields, Mapping) else fields
        pairs = tuple((key, _value_text(key, value)) for key, value in items)
        where = cls(kind, source_prefix, table, ingested_after, ingested_before, pairs)
        return None if where.is_empty else where

    @property
    def is_empty(self) -> bool:
        """True when no condition is set (every chunk passes)."""
        return self == SearchFilter()


def _check_kind(kind: str | None, table: str | None, fields: tuple[tuple[str, str], ...]) -> None:
    if kind not in (None, "document", "row"):
        raise InputError(f"filter kind must be 'document' or 'row', got {kind!r}")
    if kind == "document" and (table is not None or fields):
        raise InputError("filter table and fields match database rows only; drop them or use kind 'row'")


def _check_text(name: str, value: str | None, limit: int) -> None:
    if value is not None and not 0 < len(value) <= limit:
        raise InputError(f"filter {name} must be 1 to {limit} characters; leave it out to match any")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _value_text(key: str, value: object) -> str:
    text = field_text(value)
    if text is None:
        raise InputError(
            f"filter field {key!r}: the value must be text, a number or a boolean of at most "
            f"{FIELD_VALUE_MAX} characters"
        )
    return text


def _check_fields(fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    pairs = sorted(set(fields))
    if len(pairs) > FIELDS_MAX:
        raise InputError(f"a filter takes at most {FIELDS_MAX} fields, got {len(pairs)}; drop some")
    for i, (key, value) in enumerate(pairs):
        if not _usable_key(key):
            raise InputError(
                f"filter field name {key!r} must be 1 to {FIELD_KEY_MAX} characters without quotes, "
                "backslashes or control characters"
            )
        if len(value) > FIELD_VALUE_MAX:
            raise InputError(f"filter field {key!r}: the value is over {FIELD_VALUE_MAX} characters")
        if i and pairs[i - 1][0] == key:
            raise InputError(f"filter field {key!r} is given twice with different values; keep one")
    return tuple(pairs)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _same_text(expr: ColumnElement[str], text: str) -> ColumnElement[bool]:
    # `=` ignores case under MariaDB's default collation; REPLACE matches the exact case on all three
    return and_(expr == text, func.replace(expr, text, "") == "")


def _conditions(where: SearchFilter) -> list[ColumnElement[bool]]:
    """SQL conditions on documents for `where`. LIKE ignores ASCII case on SQLite and MariaDB, and `=` on
    MariaDB, so each is paired with a REPLACE-based check that makes every match case-exact."""
    doc, found = DocumentRow, []
    if where.kind is not None:
        found.append(doc.kind == where.kind)
    if (prefix := where.source_prefix) is not None:
        found.append(doc.source.startswith(prefix, autoescape=True))
        found.append(_same_text(func.substr(doc.source, 1, len(prefix)), prefix))
    if where.table is not None:
        segment, rest = f"/{where.table}/", func.substr(doc.source, len(_ROW_SCHEME) + 1)
        found.append(doc.kind == "row")
        found.append(doc.source.like(f"{_ROW_SCHEME}%{_like_escaped(segment)}%", escape="\\"))
        found.append(func.replace(rest, segment, "") != rest)  # the path after db:// holds /TABLE/
    if where.ingested_after is not None:
        found.append(doc.updated_at >= where.ingested_after)
    if where.ingested_before is not None:
        found.append(doc.updated_at < where.ingested_before)
    found.extend(_same_text(doc.fields[key].as_string(), value) for key, value in where.fields)
    return found


def matching_chunk_ids(catalog: Catalog, collection_id: int, where: SearchFilter) -> np.ndarray:
    """Sorted int64 ids of the collection's chunks that pass `where` (one indexed query)."""
    stmt = (
        select(ChunkRow.id)
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .where(
            ChunkRow.collection_id == collection_id,
            DocumentRow.collection_id == collection_id,
            *_conditions(where),
        )
        .order_by(ChunkRow.id)
    )
    with catalog.engine.connect() as conn:
        return np.fromiter(conn.execute(stmt).scalars(), dtype=np.int64)
