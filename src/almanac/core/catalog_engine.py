"""The catalog's database engine: SQLite gets WAL and durable commits; any SQLAlchemy URL works."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url

from almanac.core.errors import ConfigError


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers search while the single writer commits; FULL sync makes commits durable.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for the catalog URL (SQLite pragmas applied on every connection)."""
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver
        raise ConfigError(f"cannot use catalog URL ({exc}); check ALMANAC_CATALOG__URL") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_error(url: str, cause: BaseException | None) -> ConfigError:
    """The one-line error for a catalog that cannot be opened: a SQLite file names its folder (ALMANAC_HOME
    by default), since an unreadable home or a file that is not a database is what to fix there."""
    engine_url = make_url(url)
    if engine_url.get_backend_name() == "sqlite" and engine_url.database not in (None, "", ":memory:"):
        path = Path(engine_url.database or "")
        return ConfigError(
            f"cannot open the catalog {path} ({cause}); check that ALMANAC_HOME={path.parent} is a readable, "
            "writable folder and that catalog.db there is an Almanac catalog (restore it with "
            "`almanac restore BACKUP`, or move it away to start empty)"
        )
    return ConfigError(f"cannot open the catalog database: {cause}; check ALMANAC_CATALOG__URL")
