"""Answer-time row re-reads are bounded: a slow, removed or unreachable source database degrades the answer.

The rows of table ``parts`` are indexed, then the source turns bad: the table becomes a view whose every read
runs a slow subquery (SQLite: a recursive count; PostgreSQL: ``pg_sleep``), the SQLite file is removed, or
the PostgreSQL server is unreachable. /v1/search and /v1/query still answer 200 within the statement timeout,
without the row sources and with a warning naming the source.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from almanac.server.services import Services
from tests.server.ops_fixtures import ops_client, ops_settings

ROWS = [(1, "otter bolt"), (2, "weir gear"), (3, "otter gasket")]
SLOW = {  # a view over the base table that takes seconds to read, whatever the filter
    "sqlite": "SELECT * FROM parts_base WHERE (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
    "SELECT i + 1 FROM n WHERE i < 50000000) SELECT count(*) FROM n) > 0",
    "postgresql": "SELECT * FROM parts_base WHERE (SELECT true FROM pg_sleep(10))",
}
TIMEOUT_MS = 300


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'parts.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT)"))
        for pk, name in ROWS:
            conn.execute(sa.text("INSERT INTO parts VALUES (:id, :name)"), {"id": pk, "name": name})
    engine.dispose()
    return url


@pytest.fixture
def app(tmp_path: Path, source_url: str) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(tmp_path / "home", lookup_timeout_ms=TIMEOUT_MS)
    settings.home.mkdir(parents=True)
    _index(settings, source_url)
    with ops_client(settings) as (client, services):
        assert services.readiness.wait(10)
        yield client, services


def _index(settings: Settings, url: str) -> None:
    catalog = Catalog(settings.catalog_url)
    with WriterLock(settings.home):
        indexer = Indexer(settings, catalog, HashingEmbedder(settings.embedding.hashing_dimension))
        catalog.register_source("shop", url)
        db = SourceDatabase("shop", url)
        indexer.ingest_tables(db, ["parts"], settings.default_collection)
        db.close()
    catalog.close()


def _slow_down(url: str) -> None:
    """Swap table parts for a slow view of the same rows (the server keeps its reflected table)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE parts RENAME TO parts_base"))
        conn.execute(sa.text(f"CREATE VIEW parts AS {SLOW[engine.dialect.name]}"))
    engine.dispose()


def _ask(client: TestClient) -> tuple[dict[str, object], dict[str, object], float]:
    started = time.monotonic()
    search = client.post("/v1/search", json={"query": "otter bolt", "top_k": 10})
    query = client.post("/v1/query", json={"question": "Which part is the otter bolt?"})
    assert search.status_code == 200 and query.status_code == 200, (search.text, query.text)
    return search.json(), query.json(), time.monotonic() - started


def _kinds(body: dict[str, object], key: str) -> set[str]:
    items = body[key]
    assert isinstance(items, list)
    return {item["kind"] for item in items}


def _assert_degraded(client: TestClient, limit_s: float) -> None:
    search, query, took = _ask(client)
    assert took < limit_s, f"the re-reads took {took:.1f} s"
    assert "row" not in _kinds(search, "results") and "row" not in _kinds(query, "sources")
    for body in (search, query):
        warnings = body["warnings"]
        assert isinstance(warnings, list) and len(warnings) == 1 and "'shop'" in warnings[0], body


def test_rows_are_read_live_without_warnings(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    search, query, _ = _ask(client)
    assert "row" in _kinds(search, "results") and search["warnings"] == [] and query["warnings"] == []


def test_a_slow_source_is_stopped_by_the_statement_timeout(
    app: tuple[TestClient, Services], source_url: str
) -> None:
    client, _ = app
    assert "row" in _kinds(_ask(client)[0], "results")  # reflected while the table was fast
    _slow_down(source_url)
    _assert_degraded(client, limit_s=8.0)  # two answers, each re-read stopped after 0.3 s; not 10+ s each


def test_a_removed_or_unreachable_source_is_left_out(
    app: tuple[TestClient, Services], source_url: str
) -> None:
    client, services = app
    services.sources.close()  # as after a restart: nothing pooled
    if source_url.startswith("sqlite"):
        Path(sa.make_url(source_url).database or "").unlink()
    else:
        services.catalog.register_source("shop", "postgresql+psycopg://postgres@127.0.0.1:9/test")
    _assert_degraded(client, limit_s=15.0)


def test_the_sqlite_guard_is_released_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
    db = SourceDatabase("x", f"sqlite:///{path}")
    try:
        key = next(k for k, _ in db.iter_rows("t"))
        assert db.read_rows([key], timeout_ms=TIMEOUT_MS) == {key: {"id": 1}}
        assert db.read_rows([key]) == {key: {"id": 1}}
    finally:
        db.close()
