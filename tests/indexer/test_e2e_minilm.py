"""End to end with the real embedded MiniLM: the sample corpus and table, indexed and searched."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import SentenceTransformerEmbedder
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.consistency import check_collection
from almanac.indexer.pipeline import Indexer
from almanac.server.retrieval.retriever import Retriever

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Catalog, Retriever]:
    import sys

    sys.path.insert(0, str(SAMPLES))
    from sample_db import create_sample_db

    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home)
    catalog = Catalog(settings.catalog_url)
    embedder = SentenceTransformerEmbedder()
    indexer = Indexer(settings, catalog, embedder)
    docs = indexer.ingest_paths([SAMPLES / "documents"], "default")
    db = SourceDatabase("samples", f"sqlite:///{create_sample_db(home / 'samples.db')}")
    rows = indexer.ingest_tables(db, ["bikes", "stores"], "default")
    db.close()
    assert docs.ok and rows.ok and docs.added == 5 and rows.added == 16
    store = IndexStore(settings.index_dir, settings.index)
    return settings, catalog, Retriever(catalog, embedder, store, settings.retrieval)


@pytest.mark.parametrize(
    ("question", "expected_source"),
    [
        ("How many years of warranty does a carbon fibre frame get?", "warranty-policy.md"),
        ("Which frame size fits a rider who is 180 cm tall?", "frame-size-guide.md"),
        ("When was Northwind Cycles founded?", "company-history.md"),
        ("How much does the Storm SL cost?", "db://samples/bikes/"),
    ],
)
def test_search_finds_the_source_that_holds_the_answer(
    indexed: tuple[Settings, Catalog, Retriever], question: str, expected_source: str
) -> None:
    _, _, retriever = indexed
    hits = retriever.search(question, "default", 3)
    assert expected_source in hits[0].source, [h.source for h in hits]


def test_real_model_index_is_consistent_and_records_the_model(
    indexed: tuple[Settings, Catalog, Retriever],
) -> None:
    settings, catalog, _ = indexed
    store = IndexStore(settings.index_dir, settings.index)
    assert check_collection(catalog, store, "default") == []
    stats = catalog.stats("default")
    assert (stats.embedding_model, stats.dimension) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
