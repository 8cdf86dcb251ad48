"""Aggregates over a source table: count, min and max of a column among rows matching equality conditions.

Built from SQLAlchemy Core constructs on the reflected table, never from text: the table and column names
come from reflection, the values are bound parameters, and the read runs in the source's read-only
transaction with a statement timeout. Checking that the table is allow-listed is the caller's job (the
server's guard in server/retrieval/lookup_tools.py); `allowed_columns` limits the columns used.

    >>> import sqlite3
    >>> owner = sqlite3.connect("file:agg?mode=memory&cache=shared", uri=True)
    >>> _ = owner.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT, w REAL);"
    ...                         "INSERT INTO t VALUES (1, 'a', 2.5), (2, 'a', 4.0), (3, 'b', 9.0);")
    >>> db = SourceDatabase("s", "sqlite:///file:agg?mode=memory&cache=shared&uri=true")
    >>> aggregate(db, "t", "count", None, {"c": "a"}), aggregate(db, "t", "max", "w", {"c": "a"})
    (2, 4.0)
    >>> db.close(); owner.close()
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from almanac.core.errors import InputError
from almanac.core.row_text import coerce_value, json_row
from almanac.core.source_db import SourceDatabase

AGGREGATES = ("count", "min", "max")


def aggregate(
    db: SourceDatabase,
    table: str,
    function: str,
    column: str | None,
    where: Mapping[str, Any],
    *,
    timeout_ms: int | None = None,
    allowed_columns: Collection[str] | None = None,
) -> Any:
    """COUNT(*) or MIN/MAX(column) over the rows of `table` whose columns equal `where` (JSON-friendly)."""
    if function not in AGGREGATES:
        raise InputError(f"unknown aggregate {function!r}; use one of {', '.join(AGGREGATES)}")
    info = db.check_table(table)  # UnknownTableError for a missing table
    allowed = set(info.columns) & set(allowed_columns if allowed_columns is not None else info.columns)
    for name in [*where, *([column] if column is not None else [])]:
        if name not in allowed:
            raise InputError(
                f"column {name!r} cannot be used on {table!r}; allowed columns: {', '.join(sorted(allowed))}"
            )
    if (column is None) != (function == "count"):
        raise InputError(f"{function} needs {'no column' if function == 'count' else 'a column'}")
    with db.read_only(timeout_ms) as conn:
        reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
        conditions = []
        for name, value in where.items():
            try:
                conditions.append(reflected.c[name] == coerce_value(reflected.c[name], value))
            except (ValueError, ArithmeticError):
                return 0 if function == "count" else None  # a value not of the column's type matches no row
        target = sa.func.count() if column is None else getattr(sa.func, function)(reflected.c[column])
        value = conn.execute(sa.select(target).select_from(reflected).where(*conditions)).scalar()
    return json_row({"value": value})["value"]
