"""Builders shared by the CLI commands: each command composes only what it needs.

Imports of the heavier sides (server, models) happen inside the builders, so `almanac ingest` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from almanac.core.catalog import Catalog
from almanac.core.embedder import AnyEmbedder
from almanac.core.embedder import build_embedder as _build_embedder
from almanac.core.ports import Embedder
from almanac.core.search_filter import SearchFilter
from almanac.core.settings import Settings
from almanac.core.types import Hit

if TYPE_CHECKING:
    from almanac.finetune.evaluation import Evaluator
    from almanac.indexer.pipeline import Indexer
    from almanac.indexer.report import Progress
    from almanac.server.answering.answer import Answer
    from almanac.server.answering.service import AnswerService
    from almanac.server.retrieval.retriever import Retriever
    from almanac.server.services import AnsweringStack


def open_catalog(settings: Settings) -> Catalog:
    """The catalog named by the settings (SQLite in ALMANAC_HOME by default)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Catalog(settings.catalog_url)


def build_embedder(settings: Settings) -> AnyEmbedder:
    """The configured embedder."""
    return _build_embedder(settings.embedding, settings.models_dir)


def build_indexer(settings: Settings, catalog: Catalog, progress: Progress | None = None) -> Indexer:
    """The indexing pipeline over the configured embedder."""
    from almanac.indexer.pipeline import Indexer

    return Indexer(settings, catalog, build_embedder(settings), progress)


def build_retriever(
    settings: Settings, catalog: Catalog | None = None, embedder: Embedder | None = None
) -> Retriever:
    """Hybrid retrieval over the catalog's published index versions."""
    from almanac.core.index_store import IndexStore
    from almanac.core.precision_embedders import PrecisionEmbedders
    from almanac.server.retrieval.retriever import Retriever

    catalog = catalog or open_catalog(settings)
    store = IndexStore(settings.index_dir, settings.index)
    embedder = embedder or build_embedder(settings)
    pool = PrecisionEmbedders(settings.embedding, settings.models_dir, embedder)
    return Retriever(catalog, embedder, store, settings.retrieval, pool.for_collection)


def search_live(
    settings: Settings, query: str, collection: str, k: int, where: SearchFilter | None = None
) -> list[Hit]:
    """What /v1/search returns: hybrid search among the chunks that pass `where`, then row hits re-read
    from their source database."""
    from almanac.server.retrieval.source_registry import SourceRegistry

    catalog = open_catalog(settings)
    hits = build_retriever(settings, catalog).search(query, collection, k, where=where)
    sources = SourceRegistry(catalog, timeout_ms=settings.server.lookup_timeout_ms)
    try:
        return sources.refresh(hits)
    finally:
        sources.close()


def build_answering(settings: Settings, base_only: bool = False) -> AnsweringStack:
    """The server's answering stack (retrieval, live rows, prompt, chat model) for CLI use, built once.

    `base_only`: no adapter unless a call names one (what `almanac eval` means by "base"); otherwise the
    server's policy (the collection's adapter, else the promoted default).
    """
    from almanac.core.adapter_registry import AdapterRegistry
    from almanac.server.answering.adapter_policy import AdapterPolicy
    from almanac.server.services import build_answering as _build_answering
    from almanac.server.services import configured_chat, serving_adapters

    catalog = open_catalog(settings)
    chat = configured_chat(settings)
    registry = AdapterRegistry(settings.adapters_dir)
    adapters = AdapterPolicy() if base_only else serving_adapters(settings, registry)
    return _build_answering(settings, catalog, build_embedder(settings), chat, adapters)


def build_evaluator(settings: Settings, collection: str, k: int, max_tokens: int | None = None) -> Evaluator:
    """An Evaluator over the server's own answering stack, in which 'base' means no adapter at all;
    `max_tokens` defaults to the chat settings'."""
    from almanac.finetune.evaluation import Evaluator

    stack = build_answering(settings, base_only=True)
    return Evaluator(
        ServerAnswerer(stack.answerer),
        stack.retriever,
        collection,
        k,
        chat=stack.chat,
        max_tokens=max_tokens or settings.chat.max_new_tokens,
    )


class ServerAnswerer:
    """The server's AnswerService behind finetune.ports.Answerer."""

    def __init__(self, service: AnswerService) -> None:
        self.service = service

    def answer(self, question: str, collection: str, adapter: str | None) -> Answer:
        """The server's answer (text, hits, cited, ...) to one question."""
        from almanac.server.answering.answer import Ask

        return self.service.answer(Ask(question, collection, adapter=adapter))
