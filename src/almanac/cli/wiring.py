"""Builders shared by the CLI commands: each command composes only what it needs."""

from __future__ import annotations

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder, SentenceTransformerEmbedder
from almanac.core.embedder import build_embedder as _build_embedder
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer
from almanac.indexer.report import Progress
from almanac.server.retrieval import Retriever


def open_catalog(settings: Settings) -> Catalog:
    """The catalog named by the settings (SQLite in ALMANAC_HOME by default)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Catalog(settings.catalog_url)


def build_embedder(settings: Settings) -> HashingEmbedder | SentenceTransformerEmbedder:
    """The configured embedder."""
    return _build_embedder(settings.embedding)


def build_indexer(settings: Settings, catalog: Catalog, progress: Progress | None = None) -> Indexer:
    """The indexing pipeline over the configured embedder."""
    return Indexer(settings, catalog, build_embedder(settings), progress)


def build_retriever(settings: Settings, catalog: Catalog | None = None) -> Retriever:
    """Hybrid retrieval over the catalog's published index versions."""
    catalog = catalog or open_catalog(settings)
    store = IndexStore(settings.index_dir, settings.index)
    return Retriever(catalog, build_embedder(settings), store, settings.retrieval)
