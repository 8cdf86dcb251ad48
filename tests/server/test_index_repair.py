"""A damaged index file found by the server: searches keep answering from an index rebuilt from the catalog,
the event is logged, and a repair job (the one writer) writes a verified index back to disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.index_store import IndexStore
from almanac.indexer.pipeline import Indexer
from tests.server.ops_fixtures import CORPUS, ops_client, ops_settings, write_corpus


def test_a_corrupted_segment_is_rebuilt_logged_and_written_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ops_settings(tmp_path / "home")
    folder = write_corpus(tmp_path / "docs", CORPUS)
    settings.home.mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    Indexer(settings, catalog, HashingEmbedder(settings.embedding.hashing_dimension)).ingest_paths(
        [folder], "lib"
    )
    [segment] = (settings.index_dir / "lib").glob("*.npz")
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum no longer matches
    segment.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)

    with ops_client(settings) as (client, services):
        hits = client.post("/v1/search", json={"query": "river otter colony Kelmsby", "collection": "lib"})
        assert hits.status_code == 200
        assert Path(hits.json()["results"][0]["source"]).name == "otters.md"  # served while damaged
        deadline = time.monotonic() + 30
        while not (jobs := [j for j in services.jobs.list() if j.kind == "repair" and j.done]):
            assert time.monotonic() < deadline, services.jobs.list()
            time.sleep(0.05)
        assert jobs[0].state == "succeeded" and jobs[0].collection == "lib"
        after = client.post("/v1/search", json={"query": "Varrow town clock", "collection": "lib"})
        assert Path(after.json()["results"][0]["source"]).name == "clocks.md"

    assert "event=index_rebuild collection=lib" in caplog.text
    assert "event=index_repair_queued collection=lib" in caplog.text
    fresh = IndexStore(settings.index_dir, settings.index).load(catalog, "lib")
    assert not fresh.rebuilt and len(fresh.index) == catalog.stats("lib").chunks  # the files verify again
