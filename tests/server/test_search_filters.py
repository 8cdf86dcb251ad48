"""Search filters through the server: the retriever searches only the chunks that pass (so a filtered search
still fills top_k), /v1/search and /v1/query take `filter`, bad filters get one clear 4xx, filters never
reach past the resolved collection, and the search batcher only groups callers with the same filter."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.search_filter import SearchFilter
from almanac.core.settings import RetrievalSettings, Settings
from almanac.core.types import Hit
from almanac.indexer.pipeline import Indexer
from almanac.server.app import create_app
from almanac.server.retrieval.search_batcher import SearchBatcher
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services
from tests.server.corpus import BIKES, index_corpus, make_shop_db
from tests.server.ops_fixtures import bearer, ops_client, ops_settings, write_corpus

LIGHTHOUSES = {
    f"light{i:02d}.md": f"# Lighthouse {i}\n\nThe granite lighthouse number {i}.\n" for i in range(20)
}
QUERY = "granite lighthouse"


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    """20 lighthouse documents that outrank the 3 bike rows for QUERY, and only 5 candidates per list: an
    unfiltered search never reaches a row, a filter applied after the cut would find none."""
    settings = Settings(
        home=tmp_path / "home",
        embedding={"model": "hashing", "hashing_dimension": 256},
        retrieval={"candidates": 5},
    )
    index_corpus(settings, LIGHTHOUSES, make_shop_db(tmp_path / "shop.db"))
    services = build_services(settings, ScriptedChatModel())
    with TestClient(create_app(services=services)) as client:
        assert services.readiness.wait(10)
        yield client, services


def test_a_filtered_search_fills_top_k_from_chunks_the_unfiltered_search_never_reaches(
    crowded: tuple[TestClient, Any],
) -> None:
    client, services = crowded
    retriever = services.answering.retriever
    unfiltered = retriever.search(QUERY, "default", 10)
    assert len(unfiltered) == 10 and all(h.kind == "document" for h in unfiltered)  # premise
    rows = SearchFilter(table="bikes")
    for top_k in (1, 2, 3, 10):
        hits = retriever.search(QUERY, "default", top_k, where=rows)
        assert len(hits) == min(top_k, len(BIKES))
        assert all(h.kind == "row" and h.source.startswith("db://shop/bikes/") for h in hits)
    body = {"query": QUERY, "top_k": 10, "filter": {"kind": "row", "table": "bikes"}}
    results = client.post("/v1/search", json=body).json()["results"]
    assert sorted(r["source"] for r in results) == [f"db://shop/bikes/id={i}" for i, *_ in BIKES]
    docs = client.post("/v1/search", json={"query": QUERY, "top_k": 7, "filter": {"kind": "document"}})
    assert [r["kind"] for r in docs.json()["results"]] == ["document"] * 7


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"fields": {"color": "red"}}, ["db://shop/bikes/id=2"]),
        ({"fields": {"weight_kg": 12.5}}, ["db://shop/bikes/id=1"]),  # numbers match the row text
        ({"fields": {"color": "RED"}}, []),  # case-sensitive
        ({"table": "bikes", "fields": {"id": "3", "color": "blue"}}, ["db://shop/bikes/id=3"]),
        ({"source_prefix": "db://shop/bikes/id=1"}, ["db://shop/bikes/id=1"]),
        (
            {"kind": "row", "ingested_after": "2000-01-01T00:00:00"},
            [f"db://shop/bikes/id={i}" for i in (1, 2, 3)],
        ),
        ({"ingested_before": "2000-01-01T00:00:00Z"}, []),
    ],
)
def test_search_filters_rows_by_field_prefix_and_time(
    client: TestClient, condition: dict[str, Any], expected: list[str]
) -> None:
    response = client.post("/v1/search", json={"query": "bike", "top_k": 20, "filter": condition})
    assert response.status_code == 200, response.text
    assert sorted(r["source"] for r in response.json()["results"]) == expected


@pytest.mark.parametrize(
    ("condition", "status", "fragment"),
    [
        ({"kind": "file"}, 422, "filter.kind"),
        ({"tabel": "bikes"}, 422, "filter.tabel: Extra inputs are not permitted"),
        ({"fields": {f"c{i}": "v" for i in range(17)}}, 422, "filter.fields"),
        ({"fields": {"k" * 65: "v"}}, 422, "filter.fields"),
        ({"fields": {"color": "r" * 257}}, 422, "filter.fields.color"),
        ({"fields": {"color": {"any": "red"}}}, 422, "filter.fields.color"),
        ({"source_prefix": "x" * 2049}, 422, "filter.source_prefix"),
        ({"ingested_after": "yesterday"}, 422, "filter.ingested_after"),
        ({"ingested_after": "2026-02-01", "ingested_before": "2026-01-01"}, 400, "swap them"),
        ({"kind": "document", "table": "bikes"}, 400, "match database rows only"),
        ({"table": "shop/bikes"}, 400, "give the table name alone"),
        ({"fields": {'say"hi': "v"}}, 400, "without quotes"),
    ],
)
def test_a_bad_filter_gets_one_clear_4xx(
    client: TestClient, condition: dict[str, Any], status: int, fragment: str
) -> None:
    for path, body in (("/v1/search", {"query": "bike"}), ("/v1/query", {"question": "Which bike?"})):
        response = client.post(path, json={**body, "filter": condition})
        assert response.status_code == status, (path, response.text)
        message = response.json()["error"]["message"]
        assert fragment in message and "\n" not in message, message


def test_query_answers_from_the_filtered_sources_only(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue("The Road Racer is red [1].")
    where = {"table": "bikes", "fields": {"color": "red"}}
    body = client.post("/v1/query", json={"question": "Which bike is red?", "filter": where}).json()

    assert [s["source"] for s in body["sources"]] == ["db://shop/bikes/id=2"]
    prompt = chat.calls[0][0][-1].content
    assert prompt.count('<source id="') == 1 and "Road Racer" in prompt and "Kessik" not in prompt
    assert body["cited"] == [1]
    streamed = client.post("/v1/query", json={"question": "Which bike?", "filter": where, "stream": True})
    assert streamed.status_code == 200 and "db://shop/bikes/id=2" in streamed.text
    assert "db://shop/bikes/id=1" not in streamed.text and "volcanoes.md" not in streamed.text


def test_a_filter_never_reaches_past_the_keys_collection(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    settings.home.mkdir(parents=True)
    own = write_corpus(tmp_path / "own", {"otters.md": "# Otters\n\nThe otters of Kelmsby.\n"})
    theirs = write_corpus(tmp_path / "theirs", {"vault.md": "# Vault\n\nThe otter vault.\n"})
    index_corpus_folders(settings, {"alf": own, "brv": theirs})
    with ops_client(settings) as (client, services):
        key = bearer(services.keys.create("read", "alf"))
        into_theirs = {"query": "otters", "filter": {"source_prefix": f"{theirs.resolve()}/"}}
        response = client.post("/v1/search", json=into_theirs, headers=key)
        assert response.status_code == 200 and response.json()["results"] == []
        mine = client.post(
            "/v1/search", json={"query": "otters", "filter": {"kind": "document"}}, headers=key
        )
        assert [r["source"] for r in mine.json()["results"]] == [str((own / "otters.md").resolve())]
        bad = {
            "ingested_after": "2026-02-01",
            "ingested_before": "2026-01-01",
        }  # a 400 inside the own collection
        for body in ({"query": "vault", "collection": "brv"}, {"question": "vault?", "collection": "brv"}):
            path = "/v1/search" if "query" in body else "/v1/query"
            response = client.post(path, json={**body, "filter": bad}, headers=key)
            assert response.status_code == 403, response.text  # the collection is refused before the filter


def index_corpus_folders(settings: Settings, folders: dict[str, Path]) -> None:
    """Index each folder into the collection of its name."""
    catalog = Catalog(settings.catalog_url)
    indexer = Indexer(settings, catalog, HashingEmbedder(settings.embedding.hashing_dimension))
    for collection, folder in folders.items():
        indexer.ingest_paths([folder], collection)
    catalog.close()


class FilterRecordingRetriever:
    """Records (queries, where) per search_many call; the first call blocks until `release` is set."""

    def __init__(self) -> None:
        self.settings = RetrievalSettings()
        self.calls: list[tuple[list[str], SearchFilter | None]] = []
        self.release, self.first_started = threading.Event(), threading.Event()

    def search_many(
        self, queries: Sequence[str], collection: str, top_k: int, where: SearchFilter | None = None
    ) -> list[list[Hit]]:
        self.calls.append((list(queries), where))
        if len(self.calls) == 1:
            self.first_started.set()
            self.release.wait(10)
        return [[Hit(0, 1.0, f"{q}|{where}", collection, "", "document")] for q in queries]


def test_the_batcher_only_groups_searches_with_the_same_filter() -> None:
    retriever = FilterRecordingRetriever()
    batcher = SearchBatcher(retriever, window_s=0.3)  # type: ignore[arg-type]
    red, blue = SearchFilter.of(fields={"color": "red"}), SearchFilter.of(fields={"color": "blue"})
    asks = [("r1", red), ("b1", blue), ("r2", SearchFilter.of(fields={"color": "red"})), ("n1", None)]
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.search, "q0", "c", 1)
        assert retriever.first_started.wait(5)
        futures = [pool.submit(batcher.search, q, "c", 1, where) for q, where in asks]
        threading.Timer(0.5, retriever.release.set).start()
        results = [first.result(10)] + [f.result(10) for f in futures]

    groups = sorted((sorted(queries), str(where)) for queries, where in retriever.calls[1:])
    assert groups == sorted([(["r1", "r2"], str(red)), (["b1"], str(blue)), (["n1"], "None")])
    for (query, where), hits in zip(asks, results[1:], strict=True):
        assert hits[0].text == f"{query}|{where}"  # each caller got its own filter's results
