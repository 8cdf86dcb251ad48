"""The server's collaborators in one container, built once per app (the composition root's half).

`build_services(settings)` builds the real ones (MiniLM embedder, the configured chat model, loaded lazily by
the warm-up); tests call `Services.assemble` with fakes (HashingEmbedder, a scripted chat model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from almanac.core.adapter_registry import AdapterRegistry
from almanac.core.catalog import Catalog
from almanac.core.chat_model import build_chat_model
from almanac.core.embedder import build_embedder
from almanac.core.index_store import IndexStore
from almanac.core.model_cache import SMOLLM2_ID
from almanac.core.ports import ChatModel, Embedder
from almanac.core.settings import SMOLLM2, Settings
from almanac.indexer.pipeline import Indexer
from almanac.server.answering import AnswerService
from almanac.server.job_runner import JobRunner
from almanac.server.key_store import KeyStore
from almanac.server.lazy_chat_model import LazyChatModel
from almanac.server.metrics import Metrics
from almanac.server.model_queue import ModelQueue
from almanac.server.readiness import Readiness
from almanac.server.retrieval import Retriever
from almanac.server.search_batcher import SearchBatcher
from almanac.server.source_registry import SourceRegistry

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything routes use; one instance per app."""

    settings: Settings
    catalog: Catalog
    embedder: Embedder
    retriever: Retriever
    searcher: SearchBatcher
    chat: LazyChatModel
    queue: ModelQueue
    sources: SourceRegistry
    answerer: AnswerService
    keys: KeyStore
    jobs: JobRunner
    metrics: Metrics
    registry: AdapterRegistry
    readiness: Readiness = field(default_factory=Readiness)

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        catalog: Catalog,
        embedder: Embedder,
        chat: ChatModel | LazyChatModel,
        registry: AdapterRegistry | None = None,
    ) -> Services:
        """Wire the rest around a catalog, an embedder and a chat model (real or fake)."""
        lazy = chat if isinstance(chat, LazyChatModel) else LazyChatModel.of(chat)
        registry = registry or build_registry(settings)
        store = IndexStore(settings.index_dir, settings.index)
        retriever = Retriever(catalog, embedder, store, settings.retrieval)
        searcher, queue = SearchBatcher(retriever), ModelQueue(settings.server.queue_size)
        sources = SourceRegistry(catalog)
        default = default_adapter_reader(settings, registry)
        per_collection = getattr(settings.chat, "collection_adapters", None)  # when settings grow the field
        answerer = AnswerService(searcher.search, lazy, queue, sources, settings, default, per_collection)
        metrics = Metrics()
        metrics.watch_queue(lambda: queue.depth)
        jobs = JobRunner(settings, catalog, partial(Indexer, settings, catalog, embedder))
        return cls(
            settings=settings,
            catalog=catalog,
            embedder=embedder,
            retriever=retriever,
            searcher=searcher,
            chat=lazy,
            queue=queue,
            sources=sources,
            answerer=answerer,
            keys=KeyStore(catalog),
            jobs=jobs,
            metrics=metrics,
            registry=registry,
        )

    def close(self) -> None:
        """Release what the services hold (the queue has drained by now)."""
        self.queue.close(wait=True)
        self.sources.close()
        self.catalog.close()


def default_adapter_reader(settings: Settings, registry: AdapterRegistry | None) -> Callable[[], str | None]:
    """The default adapter, read on every request so a promotion needs no restart: the registry's
    promoted one, else settings.chat.default_adapter."""
    if registry is None:
        return lambda: settings.chat.default_adapter
    return lambda: registry.default() or settings.chat.default_adapter


def build_registry(settings: Settings) -> AdapterRegistry:
    """The adapter registry: the default-adapter pointer that `promote` and `rollback` move."""
    return AdapterRegistry(settings.adapters_dir)


def build_services(settings: Settings) -> Services:
    """The real services; the chat model loads later, in the warm-up thread."""
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    name = SMOLLM2_ID if settings.chat.model == SMOLLM2 else Path(settings.chat.model).name  # no server paths
    chat = LazyChatModel(lambda: build_chat_model(settings), name)
    return Services.assemble(
        settings, catalog, build_embedder(settings.embedding), chat, build_registry(settings)
    )
