"""Read access to users' source databases: the rows Almanac indexes and re-reads live.

Almanac never writes a source. Every read runs in `SourceDatabase.read_only`: PostgreSQL ``SET TRANSACTION
READ ONLY`` + ``statement_timeout``; MariaDB/MySQL ``START TRANSACTION READ ONLY`` + ``max_statement_time``
(MariaDB, seconds) or ``max_execution_time`` (MySQL, ms); SQLite connections get ``PRAGMA query_only=ON`` and
a progress handler that aborts a statement past its timeout. Table and column names come only from reflection;
values are always bound parameters. Tables are looked up in the connection's default schema (PostgreSQL: pick
another with ``?options=-csearch_path%3Dmyschema`` in the URL).

Typed keys: `RowKey.uri()` stores key values as text, so `row_key_from_uri` gives strings back. Before
comparing, `read_rows` casts each one to its column's Python type (``"3"`` -> ``3`` for an INTEGER, ISO
text -> ``datetime``, ...), so the database compares typed values; a value that does not cast matches no row.

JSON-friendly lookup results (`json_row`): Decimal -> float when the float prints back as the same number,
else str (no silent rounding); date/time -> ISO 8601; timedelta -> seconds; UUID -> str; bytes -> base64.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import sqlite3
import time as clock
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import Column, Connection, Engine, Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from almanac.core.errors import InputError, SourceError, UnknownTableError
from almanac.core.types import RowKey

log = logging.getLogger(__name__)

_KEY_BATCH = 500  # keys per re-read statement: keeps bound parameters far under driver limits
_NAMES_SHOWN = 50  # tables listed in an "unknown table" message
_MYSQL_DIALECTS = {"mysql", "mariadb"}  # mariadb+pymysql:// names its dialect "mariadb"
_MYSQL_TIMEOUT_ERRNOS = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_URI = re.compile(r"db://(?P<source>[^/]+)/(?P<table>[^/]+)/(?P<key>.+)", re.DOTALL)


@dataclass(frozen=True)
class TableInfo:
    """A reflected table: its columns in order and its primary-key columns."""

    name: str
    columns: list[str]
    primary_key: list[str]


class SourceDatabase:
    """One registered source database (SQLite, PostgreSQL, MariaDB/MySQL), read through SQLAlchemy.

    >>> db = SourceDatabase("shop", "sqlite:///shop.db")  # doctest: +SKIP
    >>> db.check_table("bikes")  # doctest: +SKIP
    TableInfo(name='bikes', columns=['id', 'name', 'weight_kg'], primary_key=['id'])
    """

    def __init__(self, name: str, url: str, connect_timeout_s: float = 5.0) -> None:
        self.name = name
        self.masked_url = mask_url(url)
        self.engine: Engine = _create_engine(url, connect_timeout_s, self.masked_url)
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

    def read_rows(self, keys: Sequence[RowKey]) -> dict[RowKey, dict[str, Any] | None]:
        """The live rows for `keys`, one query per table and batch; None for rows deleted since indexing."""
        rows: dict[RowKey, dict[str, Any] | None] = dict.fromkeys(keys)
        by_table: dict[str, list[RowKey]] = {}
        for key in keys:
            if key.source != self.name:
                raise InputError(f"row {key.uri()} belongs to source {key.source!r}, not {self.name!r}")
            by_table.setdefault(key.table, []).append(key)
        for table, group in by_table.items():
            rows.update(self._read_table(table, group))
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
                conditions.append(reflected.c[column] == _coerce(reflected.c[column], value))
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
                self._guard(conn, timeout_ms)
                yield conn
        except DBAPIError as exc:
            raise self._read_error(exc, timeout_ms) from exc
        finally:
            self._unguard(conn, timeout_ms)
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

    def _guard(self, conn: Connection, timeout_ms: int | None) -> None:
        if self.dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # must come first in the transaction
            if timeout_ms is not None:  # set_config(..., true) is SET LOCAL with a bound value
                conn.execute(
                    sa.text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(timeout_ms)}
                )
        elif self.dialect in _MYSQL_DIALECTS:
            if timeout_ms is not None:
                name, value = _mysql_timeout(conn, timeout_ms)
                conn.execute(sa.text(f"SET SESSION {name} = :value"), {"value": value})  # name: a constant
            conn.exec_driver_sql("START TRANSACTION READ ONLY")
        elif self.dialect == "sqlite" and timeout_ms is not None:
            deadline = clock.monotonic() + timeout_ms / 1000
            conn.connection.dbapi_connection.set_progress_handler(  # type: ignore[union-attr]
                lambda: int(clock.monotonic() > deadline), 1000
            )

    def _unguard(self, conn: Connection, timeout_ms: int | None) -> None:
        """Undo session state so the pooled connection goes back clean."""
        if timeout_ms is None or conn.invalidated:
            return
        try:
            if self.dialect in _MYSQL_DIALECTS:
                name, _ = _mysql_timeout(conn, 0)
                conn.exec_driver_sql(f"SET SESSION {name} = DEFAULT")
            elif self.dialect == "sqlite":
                conn.connection.dbapi_connection.set_progress_handler(None, 0)  # type: ignore[union-attr]
        except DBAPIError:
            conn.invalidate()  # a connection we cannot reset is never reused

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

    def _read_table(self, table: str, keys: list[RowKey]) -> dict[RowKey, dict[str, Any]]:
        try:
            primary_key = self.check_table(table).primary_key
        except UnknownTableError:
            log.warning("source=%s table=%s gone or keyless; its rows read as deleted", self.name, table)
            return {}
        columns = [self._tables[table].c[k] for k in primary_key]
        wanted: dict[tuple[Any, ...], list[RowKey]] = {}
        for key in keys:
            typed = _typed_key(columns, key)
            if typed is not None:
                wanted.setdefault(typed, []).append(key)
        found: dict[RowKey, dict[str, Any]] = {}
        items = list(wanted)
        with self.read_only() as conn:
            for start in range(0, len(items), _KEY_BATCH):
                stmt = sa.select(self._tables[table]).where(
                    _match(columns, items[start : start + _KEY_BATCH])
                )
                for row in conn.execute(stmt).mappings():
                    for key in wanted.get(tuple(row[k] for k in primary_key), []):
                        found[key] = dict(row)
        return found


def _create_engine(url: str, connect_timeout_s: float, masked: str) -> Engine:
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        connect_args = {"connect_timeout": max(1, math.ceil(connect_timeout_s))}
        if backend == "sqlite":
            _check_sqlite_file(parsed.database, masked)
            connect_args = {"timeout": connect_timeout_s}
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise SourceError(
            f"cannot open source URL {masked}: {exc}; use dialect+driver://user:password@host:port/database "
            "(postgresql+psycopg, mysql+pymysql, sqlite); install drivers with almanac[pg] or almanac[mysql]"
        ) from exc
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_query_only)
    return engine


def _check_sqlite_file(database: str | None, masked: str) -> None:
    """SQLite would create a missing file; for a source that is a typo, not an empty database."""
    in_memory = not database or database == ":memory:" or database.startswith("file:")
    if not in_memory and not Path(database).is_file():
        raise SourceError(f"no SQLite database file at {database!r} ({masked}); check the path")


def _sqlite_query_only(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")


def _mysql_timeout(conn: Connection, timeout_ms: int) -> tuple[str, float | int]:
    """MariaDB counts seconds in max_statement_time; MySQL milliseconds in max_execution_time."""
    if getattr(conn.dialect, "is_mariadb", False):
        return "max_statement_time", timeout_ms / 1000
    return "max_execution_time", timeout_ms


def _coerce(column: Column[Any], value: Any) -> Any:
    """Cast a text value to the column's Python type; ValueError/ArithmeticError when it cannot be one."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return value
    if not isinstance(value, str):
        return str(value) if kind is str and value is not None else value
    if kind is bool:
        return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}[value.lower()]
    if kind in (datetime, date, time):
        return kind.fromisoformat(value)
    return kind(value) if kind in (int, float, Decimal, UUID) else value


def _typed_key(columns: list[Column[Any]], key: RowKey) -> tuple[Any, ...] | None:
    values = dict(key.key)
    if set(values) != {c.name for c in columns}:
        return None  # the key was made for another primary key: that row is gone
    try:
        return tuple(_coerce(c, values[c.name]) for c in columns)
    except (ValueError, ArithmeticError, KeyError):
        return None


def _match(columns: list[Column[Any]], keys: list[tuple[Any, ...]]) -> Any:
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.or_(*(sa.and_(*(c == v for c, v in zip(columns, k, strict=True))) for k in keys))


def json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with JSON-friendly values (see the module docstring for each type)."""
    return {column: _json_value(value) for column, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if math.isfinite(as_float) and Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def render_row(table: str, row: Mapping[str, Any]) -> str:
    """One row as one line of text, for embedding and prompts.

    None is ``null``, whitespace runs (newlines too) become one space, Decimals drop trailing zeros, binary
    values show only their size, anything else is ``str(value)``.

    >>> render_row("bikes", {"id": 3, "name": "Trail 29", "weight_kg": 12.5})
    'table: bikes | id: 3 | name: Trail 29 | weight_kg: 12.5'
    """
    parts = [f"table: {table}"] + [f"{column}: {_cell(value)}" for column, value in row.items()]
    return " | ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # binary says nothing to a language model
    if isinstance(value, Decimal):  # SQLite NUMERIC comes back as 12.5000000000
        return format(value.normalize(), "f")
    return " ".join(str(value).split())


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


def row_key_from_uri(uri: str) -> RowKey:
    """Parse ``db://SOURCE/TABLE/col=val,col=val`` (`RowKey.uri`) back; values come back as strings.

    >>> row_key_from_uri("db://shop/parts/bike_id=3,slot=front%2Cleft").key
    (('bike_id', '3'), ('slot', 'front,left'))
    """
    match = _URI.fullmatch(uri)
    pairs = [part.partition("=") for part in match["key"].split(",")] if match else []
    if not match or not pairs or any(not column or not sep for column, sep, _ in pairs):
        raise InputError(f"{uri!r} is not a row address; expected db://SOURCE/TABLE/column=value,...")
    return RowKey(match["source"], match["table"], tuple((unquote(c), unquote(v)) for c, _, v in pairs))
