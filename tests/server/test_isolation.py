"""Tenant isolation: a key bound to collection A reads, lists and names nothing of collection B.

B (``brvcoll``) holds its own documents (under ``brvdocs/``), the rows of its own source ``brvsrc`` and
its own jobs. Every route is swept with a key bound to A (``alfcoll``): B's collection name, document paths,
source name and text ("zanzibarite") never appear in a response, asking for B or for an unknown collection
gives the same 403, and A's own data still works.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from almanac.server.services import Services
from tests.server.ops_fixtures import bearer, ops_client, ops_settings, write_corpus

A, B = "alfcoll", "brvcoll"
SECRETS = ("brv", "zanzibarite")  # every name and text of B holds one of these


def _table(path: Path, table: str, rows: list[tuple[int, str]]) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)
    return f"sqlite:///{path}"


def _index(settings: Settings, collection: str, folder: Path, source: str, url: str, table: str) -> None:
    catalog = Catalog(settings.catalog_url)
    with WriterLock(settings.home):
        indexer = Indexer(settings, catalog, HashingEmbedder(settings.embedding.hashing_dimension))
        indexer.ingest_paths([folder], collection)
        catalog.register_source(source, url)
        db = SourceDatabase(source, url)
        indexer.ingest_tables(db, [table], collection)
        db.close()
    catalog.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(tmp_path / "home", lookup_tables=["alfsrc.parts", "brvsrc.ledger", "ledger"])
    settings.home.mkdir(parents=True)
    alf = write_corpus(tmp_path / "alfdocs", {"otters.md": "# Otters\n\nThe otters of Kelmsby number 37.\n"})
    brv = write_corpus(
        tmp_path / "brvdocs", {"brvnotes.md": "# Vault\n\nThe zanzibarite vault opens at 9.\n"}
    )
    alf_url = _table(tmp_path / "alf.db", "parts", [(1, "otter bolt"), (2, "weir gear")])
    brv_url = _table(tmp_path / "brv.db", "ledger", [(1, "zanzibarite payment")])
    _index(settings, A, alf, "alfsrc", alf_url, "parts")
    _index(settings, B, brv, "brvsrc", brv_url, "ledger")
    for name in ("alfjob", "brvjob1", "brvjob2", "brvjob3"):
        write_corpus(settings.home / "inbox" / name, {"x.md": "# X\n\nA note.\n"})
    with ops_client(settings) as (client, services):
        assert services.readiness.wait(10)
        yield client, services


def _clean(response: httpx.Response) -> httpx.Response:
    text = response.text.lower()
    assert not any(s in text for s in SECRETS), (response.request.url, response.text)
    return response


def _doc_ids(services: Services, collection: str) -> list[int]:
    row = services.catalog.require_collection(collection)
    return [state.id for state in services.catalog.document_states(row.id).values()]


def test_asking_for_another_collection_is_one_403(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("admin", A))
    asks = [
        ("POST", "/v1/query", {"json": {"question": "vault?", "collection": "{c}"}}),
        ("POST", "/v1/search", {"json": {"query": "vault", "collection": "{c}"}}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "almanac:{c}", "messages": [{"role": "user", "content": "q"}]}},
        ),
        ("GET", "/v1/documents", {"params": {"collection": "{c}"}}),
        ("POST", "/v1/jobs", {"json": {"kind": "folder", "path": "brvjob1", "collection": "{c}"}}),
    ]
    for method, path, spec in asks:
        bodies = []
        for collection in (B, "nosuchcoll"):
            kwargs = {k: _fill(v, collection) for k, v in spec.items()}
            response = _clean(client.request(method, path, headers=key, **kwargs))
            assert response.status_code == 403, (path, response.text)
            bodies.append(response.json())
        assert bodies[0] == bodies[1], path  # existence is not revealed
    upload = client.post(
        "/v1/documents", files={"file": ("n.md", b"# N\n\nnew\n")}, data={"collection": B}, headers=key
    )
    assert _clean(upload).status_code == 403


def _fill(value: object, collection: str) -> object:
    if isinstance(value, str):
        return value.replace("{c}", collection)
    if isinstance(value, dict):
        return {k: _fill(v, collection) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, collection) for v in value]
    return value


def test_own_collection_works_and_shows_nothing_of_b(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("read", A))
    hits = _clean(client.post("/v1/search", json={"query": "otters vault ledger", "top_k": 20}, headers=key))
    assert hits.status_code == 200 and hits.json()["results"]
    answer = _clean(client.post("/v1/query", json={"question": "How many otters?"}, headers=key))
    assert answer.status_code == 200, answer.text
    chat = {"model": f"almanac:{A}", "messages": [{"role": "user", "content": "otters?"}]}
    assert _clean(client.post("/v1/chat/completions", json=chat, headers=key)).status_code == 200
    models = _clean(client.get("/v1/models", headers=key)).json()["data"]
    assert [m["id"] for m in models] == [f"almanac:{A}"]
    docs = _clean(client.get("/v1/documents", headers=key)).json()
    assert docs["collection"] == A and docs["total"] == 3  # otters.md and two rows of parts
    for path in ("/metrics", "/readyz", "/healthz"):
        _clean(client.get(path, headers=key))


def test_a_bound_admin_key_cannot_move_the_shared_default_adapter(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("admin", A))
    assert _clean(client.get("/v1/adapters", headers=key)).status_code == 200
    for path in ("/v1/adapters/anyname/promote", "/v1/adapters/rollback"):
        response = _clean(client.post(path, headers=key))
        assert response.status_code == 403 and "bound to no collection" in response.text, response.text


def test_an_unknown_own_collection_names_no_other(tmp_path: Path, app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("read", "ghostcoll"))
    for path, body in (("/v1/search", {"query": "x"}), ("/v1/query", {"question": "x"})):
        response = _clean(client.post(path, json=body, headers=key))
        assert response.status_code == 404 and A not in response.text, response.text
    assert _clean(client.get("/v1/documents", headers=key)).status_code == 404


def test_another_collections_document_is_not_found(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("write", A))
    theirs, missing = _doc_ids(services, B)[0], 10**9
    for doc_id in (theirs, missing):
        response = _clean(client.delete(f"/v1/documents/{doc_id}", headers=key))
        assert response.status_code == 404 and f"no document {doc_id}" in response.text
    assert theirs in _doc_ids(services, B)  # still there
    own = _clean(client.delete(f"/v1/documents/{_doc_ids(services, A)[0]}", headers=key))
    assert own.status_code == 200, own.text


def test_jobs_are_filtered_before_the_page(app: tuple[TestClient, Services]) -> None:
    client, services = app
    mine = services.jobs.submit({"kind": "folder", "path": "alfjob", "collection": A}, None)
    theirs = [
        services.jobs.submit({"kind": "folder", "path": f"brvjob{i}", "collection": B}, None)
        for i in (1, 2, 3)
    ]
    key = bearer(services.keys.create("write", A))
    page = _clean(client.get("/v1/jobs", params={"limit": 2}, headers=key)).json()
    assert [j["id"] for j in page["jobs"]] == [mine.id]
    assert _clean(client.get("/v1/jobs", params={"offset": 1}, headers=key)).json()["jobs"] == []
    assert _clean(client.get(f"/v1/jobs/{mine.id}", headers=key)).status_code == 200
    other, unknown = (_clean(client.get(f"/v1/jobs/{i}", headers=key)) for i in (theirs[0].id, "nosuchjob"))
    assert other.status_code == unknown.status_code == 404
    refused = client.post(
        "/v1/jobs", json={"kind": "database", "source": "brvsrc", "tables": ["ledger"]}, headers=key
    )
    assert _clean(refused).status_code == 400
    own = {"kind": "database", "source": "alfsrc", "tables": ["parts"]}
    assert _clean(client.post("/v1/jobs", json=own, headers=key)).status_code == 202


def test_lookups_are_scoped_to_the_collections_sources(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("read", A))
    found = _clean(client.post("/v1/lookup", json={"table": "alfsrc.parts", "where": {"id": 1}}, headers=key))
    assert found.status_code == 200 and found.json()["rows"] == [{"id": 1, "name": "otter bolt"}]
    for table in ("brvsrc.ledger", "ledger", "nosuchsrc.parts", "brvsrc.parts", "nosuch"):
        response = _clean(client.post("/v1/lookup", json={"table": table, "where": {"id": 1}}, headers=key))
        assert response.status_code == 400, (table, response.text)
    admin = bearer(services.keys.create("admin"))
    rows = client.post("/v1/lookup", json={"table": "brvsrc.ledger", "where": {"id": 1}}, headers=admin)
    assert rows.status_code == 200  # an unbound key still reads every allow-listed table


def test_database_jobs_of_a_bound_key_name_no_other_source(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("write", "default"))
    bodies = []
    for extra in ({"source": "brvsrc"}, {"source": "nosuchsrc"}, {}):
        job = {"kind": "database", "tables": ["ledger"], **extra}
        response = _clean(client.post("/v1/jobs", json=job, headers=key))
        assert response.status_code == 400, response.text
        bodies.append(response.json())
    assert bodies[0] == bodies[1] == bodies[2]  # neither existence nor the registered names are revealed
    admin = bearer(services.keys.create("admin", A))
    url = {"kind": "database", "url": "sqlite:///elsewhere.db", "name": "brvsrc", "tables": ["ledger"]}
    assert _clean(client.post("/v1/jobs", json=url, headers=admin)).status_code == 403
    assert services.catalog.source_urls()["brvsrc"].endswith("brv.db")  # not re-pointed


def test_a_bad_url_leaves_the_registered_source_as_it_was(
    tmp_path: Path, app: tuple[TestClient, Services]
) -> None:
    client, services = app
    before = services.catalog.source_urls()["alfsrc"]
    admin = bearer(services.keys.create("admin"))
    for url in (f"sqlite:///{tmp_path / 'missing.db'}", "postgresql+psycopg://u@127.0.0.1:9/x", "nope://"):
        job = {"kind": "database", "url": url, "name": "alfsrc", "tables": ["parts"]}
        response = client.post("/v1/jobs", json=job, headers=admin)
        assert response.status_code == 400 and "not registered" in response.text, response.text
    assert services.catalog.source_urls()["alfsrc"] == before
    key = bearer(services.keys.create("read", A))
    found = client.post("/v1/lookup", json={"table": "alfsrc.parts", "where": {"id": 1}}, headers=key)
    assert found.status_code == 200, found.text


def test_a_key_bound_to_default_reads_no_rows_of_another_collection(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = bearer(services.keys.create("read", "default"))
    for table in ("brvsrc.ledger", "ledger", "alfsrc.parts"):
        response = _clean(client.post("/v1/lookup", json={"table": table, "where": {"id": 1}}, headers=key))
        assert response.status_code == 400, (table, response.text)
