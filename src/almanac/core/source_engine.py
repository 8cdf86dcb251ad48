"""Engines for source databases, and the per-dialect guards that make every read read-only and bounded.

PostgreSQL ``SET TRANSACTION READ ONLY`` + ``statement_timeout``; MariaDB/MySQL
``START TRANSACTION READ ONLY`` + ``max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL,
ms); SQLite connections get ``PRAGMA query_only=ON`` and a progress handler that aborts a statement past its
timeout.
"""

from __future__ import annotations

import math
import sqlite3
import time as clock
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from almanac.core.errors import SourceError

_MYSQL_DIALECTS = {"mysql", "mariadb"}  # mariadb+pymysql:// names its dialect "mariadb"


def create_source_engine(url: str, connect_timeout_s: float, masked: str) -> Engine:
    """An engine with connect timeouts; SQLite sources are opened query-only."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        connect_args: dict[str, float] = {"connect_timeout": max(1, math.ceil(connect_timeout_s))}
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
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory: nothing on disk to check
    if not Path(database).is_file():
        raise SourceError(f"no SQLite database file at {database!r} ({masked}); check the path")


def _sqlite_query_only(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA query_only = ON")


def _sqlite_dbapi(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLite source's pooled connection."""
    dbapi = conn.connection.dbapi_connection
    assert isinstance(dbapi, sqlite3.Connection), type(dbapi).__name__
    return dbapi


def _mysql_timeout(conn: Connection, timeout_ms: int) -> tuple[str, float | int]:
    """MariaDB counts seconds in max_statement_time; MySQL milliseconds in max_execution_time."""
    if getattr(conn.dialect, "is_mariadb", False):
        return "max_statement_time", timeout_ms / 1000
    return "max_execution_time", timeout_ms


def guard_read_only(conn: Connection, dialect: str, timeout_ms: int | None) -> None:
    """Make the transaction read-only and bound its statements' time, per dialect."""
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # must come first in the transaction
        if timeout_ms is not None:  # set_config(..., true) is SET LOCAL with a bound value
            conn.execute(
                sa.text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(timeout_ms)}
            )
    elif dialect in _MYSQL_DIALECTS:
        if timeout_ms is not None:
            name, value = _mysql_timeout(conn, timeout_ms)
            conn.execute(sa.text(f"SET SESSION {name} = :value"), {"value": value})  # name: a constant
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif dialect == "sqlite" and timeout_ms is not None:
        deadline = clock.monotonic() + timeout_ms / 1000
        _sqlite_dbapi(conn).set_progress_handler(lambda: int(clock.monotonic() > deadline), 1000)


def release_guard(conn: Connection, dialect: str, timeout_ms: int | None) -> None:
    """Undo session state so the pooled connection goes back clean."""
    if timeout_ms is None or conn.invalidated:
        return
    try:
        if dialect in _MYSQL_DIALECTS:
            name, _ = _mysql_timeout(conn, 0)
            conn.exec_driver_sql(f"SET SESSION {name} = DEFAULT")
        elif dialect == "sqlite":
            _sqlite_dbapi(conn).set_progress_handler(None, 0)
    except DBAPIError:
        conn.invalidate()  # a connection we cannot reset is never reused
