"""Shared fixtures: scratch databases on the local PostgreSQL and MariaDB servers.

Each fixture creates a uniquely named database, yields its SQLAlchemy URL, and drops it afterwards. It skips
with the reason when the server cannot be reached. Override the admin URLs with ALMANAC_TEST_PG_URL and
ALMANAC_TEST_MYSQL_URL (e.g. in docker compose).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def _scratch_database(admin_url: str, driver: str, create: str, drop: str) -> Iterator[str]:
    """Create a database named almanac_test_<hex> through `admin_url`, yield its URL, drop it."""
    pytest.importorskip(driver, reason=f"{driver} is not installed (pip install -e '.[dev]')")
    name = f"almanac_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(create.format(name=name)))
    except DBAPIError as exc:
        admin.dispose()
        pytest.skip(f"database server at {make_url(admin_url).render_as_string()} is unreachable: {exc.orig}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(drop.format(name=name)))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (skips when the server is absent)."""
    yield from _scratch_database(
        os.environ.get("ALMANAC_TEST_PG_URL", PG_ADMIN_URL),
        "psycopg",
        'CREATE DATABASE "{name}"',
        'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
    )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh, empty MariaDB/MySQL database (skips when the server is absent)."""
    yield from _scratch_database(
        os.environ.get("ALMANAC_TEST_MYSQL_URL", MYSQL_ADMIN_URL),
        "pymysql",
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        "DROP DATABASE IF EXISTS `{name}`",
    )
