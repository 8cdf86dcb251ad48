"""Read access to users' source databases: the rows Almanac indexes and re-reads live.

Almanac never writes a source: every read runs in `SourceDatabase.read_only`, a read-only transaction with a
statement timeout (core/source_engine.py has the per-dialect details). Table and column names come only
from reflection; values are always bound parameters. Tables are looked up in the connection's default schema
(PostgreSQL: pick another with ``?options=-csearch_path%3Dmyschema`` in the URL). How rows become text, JSON
and addresses, and how key text is cast back to column types: core/row_text.py.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Connection, Engine, Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from almanac.core.errors import InputError, SourceError, UnknownTableError
from almanac.core.row_text import coerce_value, json_row, typed_key
from almanac.core.source_engine import create_source_engine, guard_read_only, release_guard
from almanac.core.types import RowKey

log = logging.getLogger(__name__)

_KEY_BATCH = 500  # keys per re-read statement: keeps bound parameters far under driver limits
_NAMES_SHOWN = 50  # tables listed in an "unknown table" message
_MYSQL_TIMEOUT_ERRNOS = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time


@dataclass(frozen=True)
class TableInfo:
    """A reflected table: its columns in order and its primary-key columns."""

    name: str
    columns: list[str]
    primary_key: list[str]


class SourceDatabase:
    """One registered source database (SQLite, PostgreSQL, MariaDB/MySQL), read through SQLAlchemy.

    >>> owner = sqlite3.connect("file:shop?mode=memory&cache=shared", uri=True)  # in memory while open
    >>> _ = owner.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, weight_kg REAL)")
    >>> db = SourceDatabase("shop", "sqlite:///file:shop?mode=memory&cache=shared&uri=true")
    >>> db.check_table("bikes")
    TableInfo(name='bikes', columns=['id', 'name', 'weight_kg'], primary_key=['id'])
    >>> db.close(); owner.close()
    """

    def __init__(self, name: str, url: str, connect_timeout_s: float = 5.0) -> None:
        self.name = name
        self.masked_url = mask_url(url)
        self.engine: Engine = create_source_engine(url, connect_timeout_s, self.masked_url)
        self.dialect: str = self.engine.dialect.name
        self._tables: dict[str, Table] = {}  # reflected once per instance; reopen to see schema changes

    def check_table(self, table: str) -> TableInfo:
        """Reflect `table`; raise UnknownTableError when it is absent or has no primary key."""
        reflected = self._table(table)
        primary_key = [c.name for c in reflected.primary_key.columns]
        if not primary_key:
            raise UnknownTableError(
                f"table {table!r} in source {self.name!r} has no primary key, so its rows cannot be re-read; "
                f"add one (ALTER TABLE {table} ADD PRIMARY KEY (...)) or, for a view, index its base table"
            )
        return TableInfo(table, [c.name for c in reflected.columns], primary_key)

    def iter_rows(self, table: str, batch: int = 1000) -> Iterator[tuple[RowKey, dict[str, Any]]]:
        """Every row of `table` in primary-key order, streamed by a server-side cursor, `batch` at once."""
        info = self.check_table(table)
        reflected = self._tables[table]
        stmt = sa.select(reflected).order_by(*(reflected.c[k] for k in info.primary_key))
        with self.read_only() as conn:
            result = conn.execute(
                stmt, execution_options={"stream_results": True, "yield_per": max(1, batch)}
            )
            for row in result.mappings():
                values = dict(row)
                yield RowKey(self.name, table, tuple((k, values[k]) for k in info.primary_key)), values

    def read_rows(
        self, keys: Sequence[RowKey], timeout_ms: int | None = None
    ) -> dict[RowKey, dict[str, Any] | None]:
        """The live rows for `keys`, one query per table and batch; None for rows deleted since indexing.

        Each table's reads stop after `timeout_ms` (None: never) with a SourceError.
        """
        rows: dict[RowKey, dict[str, Any] | None] = dict.fromkeys(keys)
        by_table: dict[str, list[RowKey]] = {}
        for key in keys:
            if key.source != self.name:
                raise InputError(f"row {key.uri()} belongs to source {key.source!r}, not {self.name!r}")
            by_table.setdefault(key.table, []).append(key)
        for table, group in by_table.items():
            rows.update(self._read_table(table, group, timeout_ms))
        return rows

    def lookup(
        self,
        table: str,
        where: Mapping[str, Any],
        limit: int,
        *,
        row_cap: int,
        timeout_ms: int,
        allowed_columns: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of `table` whose columns equal `where`, at most min(limit, row_cap), as JSON-friendly dicts.

        `allowed_columns` limits the columns that may be filtered on (the table allow-list is the caller's).
        """
        reflected = self._table(table)
        allowed = set(reflected.c.keys())
        if allowed_columns is not None:
            allowed &= set(allowed_columns)
        if limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        conditions = []
        for column, value in where.items():
            if column not in allowed:
                raise InputError(
                    f"column {column!r} cannot be used to look up {table!r}; "
                    f"allowed columns: {', '.join(sorted(allowed)) or '(none)'}"
                )
            if value is not None and not isinstance(value, str | int | float | bool):
                raise InputError(f"lookup values must be text, numbers, booleans or null; {column!r} is not")
            try:
                conditions.append(reflected.c[column] == coerce_value(reflected.c[column], value))
            except (ValueError, ArithmeticError):
                return []  # a value that is not of the column's type equals no row
        stmt = sa.select(reflected).where(*conditions).order_by(*reflected.primary_key.columns)
        with self.read_only(timeout_ms) as conn:
            return [json_row(row) for row in conn.execute(stmt.limit(min(limit, row_cap))).mappings()]

    @contextmanager
    def read_only(self, timeout_ms: int | None = None) -> Iterator[Connection]:
        """A connection inside a read-only transaction whose statements stop after `timeout_ms` (None: never).

        Database errors leave as SourceError; a timeout says the lookup took too long.
        """
        conn = self._connect()
        try:
            with conn.begin():
                guard_read_only(conn, self.dialect, timeout_ms)
                yield conn
        except DBAPIError as exc:
            raise self._read_error(exc, timeout_ms) from exc
        finally:
            release_guard(conn, self.dialect, timeout_ms)
            conn.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._tables.clear()
        self.engine.dispose()

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except DBAPIError as exc:
            raise SourceError(
                f"cannot reach source database {self.name!r} at {self.masked_url}: {self._scrub(exc.orig)}; "
                "check the host, port, database name, user and password, and that the server is running"
            ) from exc

    def _read_error(self, exc: DBAPIError, timeout_ms: int | None) -> SourceError:
        orig = exc.orig
        errno = orig.args[0] if orig is not None and orig.args else None
        if timeout_ms is not None and (
            getattr(orig, "sqlstate", None) == "57014"  # PostgreSQL query_canceled
            or errno in _MYSQL_TIMEOUT_ERRNOS
            or (isinstance(orig, sqlite3.OperationalError) and "interrupted" in str(orig))
        ):
            return SourceError(
                f"the lookup on source {self.name!r} took too long (over {timeout_ms} ms) and was stopped; "
                "filter on more specific columns or raise server.lookup_timeout_ms"
            )
        return SourceError(
            f"reading source {self.name!r} ({self.masked_url}) failed: {self._scrub(orig)}; "
            "check that the table still exists and that the user may read it"
        )

    def _scrub(self, orig: BaseException | None) -> str:
        """The driver's message, first line, with the password masked in case a driver echoes it."""
        message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        password = self.engine.url.password
        return message.replace(password, "***") if password else message

    def _table(self, table: str) -> Table:
        cached = self._tables.get(table)
        if cached is not None:
            return cached
        with self.read_only() as conn:
            inspector = sa.inspect(conn)
            names = sorted(inspector.get_table_names() + inspector.get_view_names())
            if table not in names:
                shown = ", ".join(names[:_NAMES_SHOWN]) + (" ..." if len(names) > _NAMES_SHOWN else "")
                raise UnknownTableError(
                    f"table {table!r} does not exist in source {self.name!r} ({self.masked_url}); "
                    f"tables there: {shown or '(none)'}"
                )
            reflected = Table(table, sa.MetaData(), autoload_with=conn)
        self._tables[table] = reflected
        return reflected

    def _read_table(
        self, table: str, keys: list[RowKey], timeout_ms: int | None
    ) -> dict[RowKey, dict[str, Any]]:
        try:
            primary_key = self.check_table(table).primary_key
        except UnknownTableError:
            log.warning("source=%s table=%s gone or keyless; its rows read as deleted", self.name, table)
            return {}
        columns = [self._tables[table].c[k] for k in primary_key]
        wanted: dict[tuple[Any, ...], list[RowKey]] = {}
        for key in keys:
            typed = typed_key(columns, key)
            if typed is not None:
                wanted.setdefault(typed, []).append(key)
        found: dict[RowKey, dict[str, Any]] = {}
        items = list(wanted)
        with self.read_only(timeout_ms) as conn:
            for start in range(0, len(items), _KEY_BATCH):
                stmt = sa.select(self._tables[table]).where(
                    _match(columns, items[start : start + _KEY_BATCH])
                )
                for row in conn.execute(stmt).mappings():
                    for key in wanted.get(tuple(row[k] for k in primary_key), []):
                        found[key] = dict(row)
        return found


def _match(columns: list[Column[Any]], keys: list[tuple[Any, ...]]) -> Any:
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.or_(*(sa.and_(*(c == v for c, v in zip(columns, k, strict=True))) for k in keys))


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for logs and messages.

    >>> mask_url("postgresql+psycopg://app:s3cret@db:5432/shop")
    'postgresql+psycopg://app:***@db:5432/shop'
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)  # unparsable: mask up to the last '@'
    if "password" in parsed.query:  # libpq also takes ?password=...
        parsed = parsed.update_query_dict({"password": "MASKED"})
    return parsed.render_as_string(hide_password=True).replace("password=MASKED", "password=***")
