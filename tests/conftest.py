"""Shared fixtures: scratch databases on the local PostgreSQL and MariaDB servers.

Each fixture creates a uniquely named scratch schema (PostgreSQL, selected by the URL's
``options=-csearch_path=...``) or database (MariaDB), yields its SQLAlchemy URL, and drops it afterwards.
It skips with the reason when the server cannot be reached. ALMANAC_TEST_PG_URL and ALMANAC_TEST_MYSQL_URL
override the admin URLs (e.g. in docker compose).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def _scratch(
    admin_url: str, driver: str, create: str, drop: str, url_for: Callable[[URL, str], URL]
) -> Iterator[str]:
    """Create a scratch schema/database almanac_test_<hex> through `admin_url`, yield its URL, drop it."""
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
        yield url_for(make_url(admin_url), name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(drop.format(name=name)))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, first on the search_path (skips when the server is absent)."""
    yield from _scratch(  # a schema, not a database: CREATE DATABASE takes a second on a busy machine
        os.environ.get("ALMANAC_TEST_PG_URL", PG_ADMIN_URL),
        "psycopg",
        'CREATE SCHEMA "{name}"',
        'DROP SCHEMA IF EXISTS "{name}" CASCADE',
        lambda url, name: url.update_query_dict({"options": f"-csearch_path={name}"}),
    )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh, empty MariaDB/MySQL database (skips when the server is absent)."""
    yield from _scratch(
        os.environ.get("ALMANAC_TEST_MYSQL_URL", MYSQL_ADMIN_URL),
        "pymysql",
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        "DROP DATABASE IF EXISTS `{name}`",
        lambda url, name: url.set(database=name),
    )
