"""The server's collaborators, built in one place (half of the composition root; `app.create_app` is the
other half).

`build_services(settings)` builds the real ones (MiniLM embedder, the configured chat model, loaded lazily by
the warm-up); tests call `Services.assemble` with fakes (HashingEmbedder, a scripted chat model). The CLI's
`almanac eval` and `almanac finetune generate` build the same answering stack with `build_answering`, with
the adapter policy they need ("base" = no adapter at all), so nothing is built twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from almanac.core.adapter_registry import AdapterRegistry
from almanac.core.catalog import Catalog
from almanac.core.chat_backend import build_chat_model
from almanac.core.embedder import build_embedder
from almanac.core.errors import AlmanacError
from almanac.core.index_store import IndexStore
from almanac.core.model_cache import served_model_name
from almanac.core.ports import ChatModel, Embedder
from almanac.core.precision_embedders import PrecisionEmbedders
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer
from almanac.server.answering.adapter_policy import AdapterPolicy
from almanac.server.answering.focus import SourceFocus
from almanac.server.answering.service import AnswerService
from almanac.server.answering.support import SupportChecker
from almanac.server.chat.lazy_chat_model import LazyChatModel
from almanac.server.chat.model_queue import ModelQueue
from almanac.server.http.metrics import Metrics
from almanac.server.http.rate_limit import RateLimits
from almanac.server.http.readiness import Readiness
from almanac.server.jobs.runner import JobRunner
from almanac.server.keys.key_store import KeyStore
from almanac.server.retrieval.retriever import Retriever
from almanac.server.retrieval.search_batcher import SearchBatcher
from almanac.server.retrieval.source_registry import SourceRegistry

log = logging.getLogger(__name__)


@dataclass
class AnsweringStack:
    """Retrieval, live rows, the model queue and the answer service over one catalog and embedder."""

    retriever: Retriever
    searcher: SearchBatcher
    chat: LazyChatModel
    queue: ModelQueue
    sources: SourceRegistry
    answerer: AnswerService
    limits: RateLimits  # requests and generated tokens per key or IP, failed key checks


def build_answering(
    settings: Settings,
    catalog: Catalog,
    embedder: Embedder,
    chat: ChatModel | LazyChatModel,
    adapters: AdapterPolicy,
) -> AnsweringStack:
    """The answering stack: what the server serves and what `almanac eval` measures."""
    lazy = chat if isinstance(chat, LazyChatModel) else LazyChatModel.of(chat)
    store = IndexStore(settings.index_dir, settings.index)
    pool = PrecisionEmbedders(settings.embedding, settings.models_dir, embedder)
    retriever = Retriever(catalog, embedder, store, settings.retrieval, pool.for_collection)
    searcher, queue = SearchBatcher(retriever), ModelQueue(settings.server.queue_size)
    sources = SourceRegistry(catalog, timeout_ms=settings.server.lookup_timeout_ms)
    focus, support = SourceFocus(embedder, settings.answer), SupportChecker(embedder)
    limits = RateLimits(settings.server)
    answerer = AnswerService(
        searcher.search, lazy, queue, sources, settings, adapters, focus, support, limits.tokens
    )
    return AnsweringStack(retriever, searcher, lazy, queue, sources, answerer, limits)


def serving_adapters(settings: Settings, registry: AdapterRegistry) -> AdapterPolicy:
    """The server's policy: the adapter asked for, else the collection's (ALMANAC_CHAT__COLLECTION_ADAPTERS),
    else the registry's promoted default (read per request: a promotion needs no restart), else the
    setting."""
    return AdapterPolicy(
        default=lambda: registry.default() or settings.chat.default_adapter,
        per_collection=dict(settings.chat.collection_adapters),
    )


@dataclass
class Services:
    """Everything routes use; one instance per app."""

    settings: Settings
    catalog: Catalog
    embedder: Embedder
    answering: AnsweringStack
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
        adapters: AdapterPolicy | None = None,
    ) -> Services:
        """Wire the rest around a catalog, an embedder and a chat model (real or fake)."""
        registry = registry or AdapterRegistry(settings.adapters_dir)
        answering = build_answering(
            settings, catalog, embedder, chat, adapters or serving_adapters(settings, registry)
        )
        metrics = Metrics()
        metrics.watch_queue(lambda: answering.queue.depth)
        jobs = JobRunner(settings, catalog, partial(Indexer, settings, catalog, embedder))
        answering.retriever.on_rebuilt = jobs.submit_repair  # damaged index files are written back
        return cls(settings, catalog, embedder, answering, KeyStore(catalog), jobs, metrics, registry)

    # Shortcuts for the routes, which each use one of these.
    @property
    def answerer(self) -> AnswerService:
        """Answers questions (/v1/query, /v1/chat/completions)."""
        return self.answering.answerer

    @property
    def searcher(self) -> SearchBatcher:
        """Batched hybrid search (/v1/search)."""
        return self.answering.searcher

    @property
    def sources(self) -> SourceRegistry:
        """Registered source databases (live rows, /v1/lookup)."""
        return self.answering.sources

    @property
    def chat(self) -> LazyChatModel:
        """The chat model, loaded by the warm-up."""
        return self.answering.chat

    def warm_up(self) -> None:
        """Load the chat model, run the embedder once, load the default collection's snapshot."""
        started = time.perf_counter()
        try:
            self.chat.load()
            self.embedder.embed(["warm-up"])
            name = self.settings.default_collection
            if self.catalog.collection(name) is not None:
                self.answering.retriever.warm(name)
                version = self.answering.retriever.version(name)
                detail = f"models loaded; collection {name!r} at version {version}"
            else:
                detail = f"models loaded; collection {name!r} is empty (ingest documents to answer)"
            self.readiness.mark_ready(detail)
            log.info("event=ready seconds=%.2f detail=%s", time.perf_counter() - started, detail)
        except (AlmanacError, OSError, RuntimeError) as exc:
            self.readiness.mark_failed(f"warm-up failed: {exc}")
            log.error("event=warm_up_failed reason=%s", exc)

    def start_warm_up(self) -> threading.Thread:
        """Warm up in a daemon thread, so the port opens (and /healthz answers) at once."""
        thread = threading.Thread(target=self.warm_up, name="almanac-warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Release what the services hold (the queue has drained by now)."""
        self.answering.queue.close(wait=True)
        self.sources.close()
        self.catalog.close()


def configured_chat(settings: Settings) -> LazyChatModel:
    """The configured chat model, loaded on first use, named as clients see it (no server paths)."""
    return LazyChatModel(partial(build_chat_model, settings), served_model_name(settings.chat.model))


def build_services(settings: Settings) -> Services:
    """The real services; the chat model loads later, in the warm-up thread."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Services.assemble(
        settings,
        Catalog(settings.catalog_url),
        build_embedder(settings.embedding, settings.models_dir),
        configured_chat(settings),
    )
