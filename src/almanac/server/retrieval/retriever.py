"""Hybrid retrieval: dense (FAISS) + lexical (BM25), fused by reciprocal rank.

Each collection is served from an immutable snapshot (index version N and its BM25 index). A search checks
the catalog's latest version first (one indexed query) and swaps in the new snapshot when the writer has
published one, so new content is searchable without a restart. Fusion, for a chunk ranked r_d densely and
r_l lexically: score = 1/(k + r_d) + 1/(k + r_l), a chunk missing from one list gets no term from it.

    >>> reciprocal_rank_fusion([[7, 3], [3, 9]], k=60)[0][0]
    3
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from almanac.core.catalog import Catalog
from almanac.core.errors import NotFoundError
from almanac.core.index_store import IndexStore, Snapshot
from almanac.core.lexical_index import LexicalIndex
from almanac.core.ports import Embedder
from almanac.core.settings import RetrievalSettings
from almanac.core.types import Hit

log = logging.getLogger(__name__)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int) -> list[tuple[int, float]]:
    """Fuse ranked id lists; returns (id, score) best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True, slots=True)
class _Served:
    snapshot: Snapshot
    lexical: LexicalIndex


class Retriever:
    """Searches collections; safe to call from many threads."""

    def __init__(
        self, catalog: Catalog, embedder: Embedder, store: IndexStore, settings: RetrievalSettings
    ) -> None:
        self.catalog, self.embedder, self.store, self.settings = catalog, embedder, store, settings
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    def version(self, collection: str) -> int:
        """The version being served for a collection (0 before the first search)."""
        served = self._served.get(collection)
        return served.snapshot.version if served else 0

    def _current(self, collection: str) -> _Served:
        row = self.catalog.collection(collection)
        if row is None:
            raise NotFoundError(
                f"no collection {collection!r}; run `almanac ingest PATH --collection {collection}` "
                "first, or use one that `almanac status` or GET /v1/models lists"
            )
        latest = self.catalog.latest_version(row.id)
        served = self._served.get(collection)
        if served and served.snapshot.version == (latest.version if latest else 0):
            return served
        with self._lock:  # one loader per collection change; others wait and reuse its result
            served = self._served.get(collection)
            if served and served.snapshot.version == (latest.version if latest else 0):
                return served
            started = time.perf_counter()
            snapshot = self.store.load(self.catalog, collection)
            chunks = list(self.catalog.iter_chunks(collection))
            lexical = LexicalIndex.build([c.id for c in chunks], [f"{c.locator}\n{c.text}" for c in chunks])
            served = _Served(snapshot, lexical)
            self._served[collection] = served
            log.info(
                "event=snapshot_loaded collection=%s version=%d chunks=%d seconds=%.2f",
                collection,
                snapshot.version,
                len(chunks),
                time.perf_counter() - started,
            )
            return served

    def warm(self, collection: str) -> None:
        """Load a collection's snapshot ahead of the first query."""
        self._current(collection)

    def search(self, query: str, collection: str, top_k: int) -> list[Hit]:
        """The top_k chunks for one query."""
        return self.search_many([query], collection, top_k)[0]

    def search_many(self, queries: Sequence[str], collection: str, top_k: int) -> list[list[Hit]]:
        """Many queries at once: one embedding call for all of them (concurrent requests batch here)."""
        served = self._current(collection)
        vectors = self.embedder.embed(list(queries))
        n = max(top_k, self.settings.candidates)
        _, dense_ids = served.snapshot.index.search(np.ascontiguousarray(vectors, dtype=np.float32), n)
        fused_per_query = []
        for query, row in zip(queries, dense_ids, strict=True):
            dense = [int(i) for i in row if i >= 0]
            lexical = [chunk_id for chunk_id, _ in served.lexical.search(query, n)]
            fused_per_query.append(reciprocal_rank_fusion([dense, lexical], self.settings.rrf_k)[:top_k])
        records = self.catalog.chunks_by_ids([i for fused in fused_per_query for i, _ in fused])
        return [
            [
                Hit(i, score, r.text, r.source, r.locator, r.kind, r.document_id)
                for i, score in fused
                if (r := records.get(i)) is not None
            ]
            for fused in fused_per_query
        ]
