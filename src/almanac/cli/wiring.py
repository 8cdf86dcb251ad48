"""Builders shared by the CLI commands: each command composes only what it needs.

Imports of the heavier sides (server, models) happen inside the builders, so `almanac ingest` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder, SentenceTransformerEmbedder
from almanac.core.embedder import build_embedder as _build_embedder
from almanac.core.settings import Settings

if TYPE_CHECKING:
    from almanac.core.chat_model import TransformersChatModel
    from almanac.indexer.pipeline import Indexer
    from almanac.indexer.report import Progress
    from almanac.server.answering import AnswerService
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
    from almanac.indexer.pipeline import Indexer

    return Indexer(settings, catalog, build_embedder(settings), progress)


def build_retriever(settings: Settings, catalog: Catalog | None = None) -> Retriever:
    """Hybrid retrieval over the catalog's published index versions."""
    from almanac.core.index_store import IndexStore
    from almanac.server.retrieval import Retriever

    catalog = catalog or open_catalog(settings)
    store = IndexStore(settings.index_dir, settings.index)
    return Retriever(catalog, build_embedder(settings), store, settings.retrieval)


def build_chat_model(settings: Settings) -> TransformersChatModel:
    """The configured chat model (the embedded SmolLM2 by default), with its default adapter loaded."""
    from almanac.core.chat_model import build_chat_model as _build_chat_model

    return _build_chat_model(settings)


def build_answerer(settings: Settings, catalog: Catalog | None = None) -> AnswerService:
    """Answering as the server does it (retrieval, live rows, prompt, chat model), for CLI use.

    `answerer.answer(Ask(question, collection, adapter=NAME))` blocks until the answer is generated.
    """
    from almanac.server.answering import AnswerService
    from almanac.server.lazy_chat_model import LazyChatModel
    from almanac.server.model_queue import ModelQueue
    from almanac.server.services import build_registry, default_adapter_reader
    from almanac.server.source_registry import SourceRegistry

    catalog = catalog or open_catalog(settings)
    retriever = build_retriever(settings, catalog)
    chat = LazyChatModel.of(build_chat_model(settings))
    queue = ModelQueue(settings.server.queue_size)
    default = default_adapter_reader(settings, build_registry(settings))
    return AnswerService(retriever.search, chat, queue, SourceRegistry(catalog), settings, default)
