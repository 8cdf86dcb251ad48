"""POST /v1/lookup on SQLite, PostgreSQL and MariaDB: allow-listed tables and columns only, bound values,
a row cap, hidden columns stay hidden, and a 400 that names the allowed tables for anything else."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from almanac.server.services import Services
from tests.server.ops_fixtures import ops_client, ops_settings

COLORS = ("red", "blue", "green")
BIKES = [(i, f"bike {i}", COLORS[i % 3], 100 * i) for i in range(1, 31)]  # 10 of each colour


def fill(url: str) -> None:
    """Tables bikes (partly open to lookups) and users (closed)."""
    meta = sa.MetaData()
    bikes = sa.Table(
        "bikes",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64)),
        sa.Column("color", sa.String(16)),
        sa.Column("cost_eur", sa.Integer),
    )
    users = sa.Table(
        "users", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(64))
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(
            bikes.insert(), [dict(zip(("id", "name", "color", "cost_eur"), b, strict=True)) for b in BIKES]
        )
        conn.execute(users.insert(), [{"id": 1, "email": "a@example.org"}])
    engine.dispose()


def count_users(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one()
    engine.dispose()
    return int(n)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")
    fill(url)
    return url


@pytest.fixture
def app(tmp_path: Path, source_url: str) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(
        tmp_path / "home",
        lookup_tables=["shop.bikes:id,name,color"],
        lookup_row_cap=4,
        lookup_timeout_ms=5000,
    )
    with ops_client(settings) as (client, services):
        services.catalog.register_source("shop", source_url)
        yield client, services


def lookup(client: TestClient, table: str, where: dict, limit: int = 10) -> tuple[int, dict]:
    response = client.post("/v1/lookup", json={"table": table, "where": where, "limit": limit})
    return response.status_code, response.json()


def test_lookup_rules(app: tuple[TestClient, Services], source_url: str) -> None:
    client, _ = app
    status, body = lookup(client, "shop.bikes", {"color": "red"}, limit=100)
    assert status == 200, body
    assert body["source"] == "shop" and body["count"] == 4 == len(body["rows"])  # capped at the row cap
    assert body["rows"] == [{"id": i, "name": f"bike {i}", "color": "red"} for i in (3, 6, 9, 12)]

    status, body = lookup(client, "bikes", {"id": "7", "color": "blue"})  # text cast to the column type
    assert (status, body["rows"]) == (200, [{"id": 7, "name": "bike 7", "color": "blue"}])

    for table in ("users", "shop.users", "other.bikes", "bikes; DROP TABLE users"):
        status, body = lookup(client, table, {"id": 1})
        assert status == 400, table
        assert "allowed tables: shop.bikes" in body["error"]["message"]

    status, body = lookup(client, "shop.bikes", {"cost_eur": 100})  # a hidden column cannot be filtered on
    assert status == 400 and "allowed columns: color, id, name" in body["error"]["message"]

    status, body = lookup(client, "shop.bikes", {"name": "x' OR '1'='1"})
    assert (status, body["rows"]) == (200, [])
    status, body = lookup(client, "shop.bikes", {"name": "bike 1'; DROP TABLE users; --"})
    assert (status, body["rows"]) == (200, [])
    assert count_users(source_url) == 1


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_bad_requests_are_refused(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert client.post("/v1/lookup", json={"table": "bikes", "sql": "SELECT 1"}).status_code == 422
    assert client.post("/v1/lookup", json={"table": "bikes", "where": {"id": [1, 2]}}).status_code == 422
    assert client.post("/v1/lookup", json={"table": "bikes", "limit": 0}).status_code == 422


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_a_bare_table_must_be_in_exactly_one_source(tmp_path: Path, source_url: str) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT)")
    settings = ops_settings(tmp_path / "home2", lookup_tables=["bikes"])
    with ops_client(settings) as (client, services):
        services.catalog.register_source("shop", source_url)
        status, body = lookup(client, "bikes", {"id": 2})
        assert status == 200 and body["rows"][0]["cost_eur"] == 200  # no column list: every column
        services.catalog.register_source("other", f"sqlite:///{other}")
        status, body = lookup(client, "bikes", {"id": 2})
        assert status == 400 and "other.bikes, shop.bikes" in body["error"]["message"]
        status, body = lookup(client, "other.bikes", {"id": 2})
        assert (status, body["source"], body["rows"]) == (200, "other", [])


def test_no_allow_list_means_no_lookups(tmp_path: Path) -> None:
    with ops_client(ops_settings(tmp_path / "home")) as (client, _):
        status, body = lookup(client, "bikes", {"id": 1})
    assert status == 400 and "ALMANAC_SERVER__LOOKUP_TABLES" in body["error"]["message"]
