"""Brings a catalog created by an earlier Almanac up to the current tables: columns added since are created.

`create_all` makes missing tables but never alters existing ones. Every column added after a release is
nullable or has a server-side default, so adding it keeps every stored row valid; nothing is ever dropped
or rewritten (the catalog holds user data).

    >>> from sqlalchemy import create_engine, text
    >>> engine = create_engine("sqlite://")
    >>> with engine.begin() as conn:
    ...     _ = conn.execute(text("CREATE TABLE documents (id INTEGER PRIMARY KEY, source TEXT)"))
    >>> add_missing_columns(engine)
    ['documents.fields']
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, inspect, text

log = logging.getLogger(__name__)

# table -> (column, SQL type and default): the columns added after the first release, in order.
ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "collections": [("precision", "VARCHAR(16) NOT NULL DEFAULT 'fp32'")],
    "documents": [("fields", "JSON")],
}


def add_missing_columns(engine: Engine) -> list[str]:
    """Add every column of `ADDED_COLUMNS` that an existing table lacks; returns ``table.column`` added."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    added: list[str] = []
    with engine.begin() as conn:
        for table, columns in ADDED_COLUMNS.items():
            if table not in tables:
                continue
            present = {column["name"] for column in inspector.get_columns(table)}
            for name, spec in columns:
                if name not in present:
                    sql_type = "TEXT" if spec == "JSON" and engine.dialect.name == "sqlite" else spec
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
                    added.append(f"{table}.{name}")
    for column in added:
        log.info("event=catalog_upgraded column=%s", column)
    return added
