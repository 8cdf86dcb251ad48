"""The catalog in production mode: PostgreSQL instead of the embedded SQLite file."""

from __future__ import annotations

from pathlib import Path

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.consistency import check_collection
from almanac.indexer.pipeline import Indexer
from tests.indexer.corpus import write_corpus


def test_ingest_update_and_delete_with_a_postgres_catalog(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(
        home=tmp_path / "home",
        catalog={"url": pg_url},
        embedding={"model": "hashing", "hashing_dimension": 64},
        chunking={"size_tokens": 32, "overlap_tokens": 8},
        ingest={"commit_chunks": 8},
    )
    assert settings.catalog_url.startswith("postgresql")
    catalog = Catalog(settings.catalog_url)
    try:
        indexer = Indexer(settings, catalog, HashingEmbedder(64))
        paths = write_corpus(tmp_path / "docs", 4)
        first = indexer.ingest_paths([tmp_path / "docs"], "default")
        assert first.added == 4 and first.version >= 2
        paths[0].write_text("# Changed\n\nEntirely new text for the first document.\n")
        paths[1].unlink()
        second = indexer.ingest_paths([tmp_path / "docs"], "default", prune=True)
        assert (second.updated, second.removed, second.unchanged) == (1, 1, 2)
        store = IndexStore(settings.index_dir, settings.index)
        assert check_collection(catalog, store, "default") == []
        sources = {c.source for c in catalog.iter_chunks("default")}
        assert str(paths[1].resolve()) not in sources and len(sources) == 3
    finally:
        catalog.close()
