"""Fixtures for indexer tests: settings over a temporary ALMANAC_HOME with the hashing embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Hashing embedder, small chunks and small commit batches so tests see several versions."""
    return Settings(
        home=tmp_path / "home",
        embedding={"model": "hashing", "hashing_dimension": 64},
        chunking={"size_tokens": 32, "overlap_tokens": 8},
        ingest={"commit_chunks": 8},
        index={"single_segment_below": 0},  # keep every commit's segment: the tests look at them
    )


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    """A fresh SQLite catalog in the temporary home."""
    settings.home.mkdir(parents=True, exist_ok=True)
    cat = Catalog(settings.catalog_url)
    yield cat
    cat.close()


@pytest.fixture
def indexer(settings: Settings, catalog: Catalog) -> Indexer:
    """The real pipeline over the hashing embedder."""
    return Indexer(settings, catalog, HashingEmbedder(64))
