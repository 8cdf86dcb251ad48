"""Hybrid retrieval: dense (FAISS) + lexical (BM25), fused by reciprocal rank.

Each collection is served from an immutable snapshot (index version N: its segments, each with vectors and
BM25 postings). A search checks the catalog's latest version first (one indexed query); when the writer has
published a newer one, one thread loads just the new segments and deletions beside the snapshot in use and
swaps the result in, while other searches go on with the snapshot they have. A filter (core/search_filter)
restricts both searches to the chunks that pass it, inside the search.

Fusion, for a chunk ranked r_d densely and r_l lexically: score = 1/(k + r_d) + 1/(k + r_l), a chunk
missing from one list gets no term from it.

    >>> reciprocal_rank_fusion([[7, 3], [3, 9]], k=60)[0][0]
    3
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow
from almanac.core.errors import NotFoundError
from almanac.core.index_store import IndexStore, Snapshot
from almanac.core.ports import Embedder
from almanac.core.precision import require_precision
from almanac.core.search_filter import SearchFilter, matching_chunk_ids
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


class Retriever:
    """Searches collections; safe to call from many threads."""

    def __init__(
        self,
        catalog: Catalog,
        embedder: Embedder,
        store: IndexStore,
        settings: RetrievalSettings,
        embedder_for: Callable[[str, str], Embedder] | None = None,
    ) -> None:
        """`embedder_for(collection, precision)`: the embedder for a collection stored in another precision
        than `embedder`'s (core/precision_embedders.py); without it such a collection is refused."""
        self.catalog, self.embedder, self.store, self.settings = catalog, embedder, store, settings
        self.embedder_for = embedder_for
        # Called with a collection's name when its files failed verification and it is served from an index
        # rebuilt in memory; the server queues a repair job there, which writes the index back as the writer.
        self.on_rebuilt: Callable[[str], object] | None = None
        self._served: dict[str, Snapshot] = {}
        self._lock = threading.Lock()

    def version(self, collection: str) -> int:
        """The version being served for a collection (0 before the first search)."""
        served = self._served.get(collection)
        return served.version if served else 0

    def _collection(self, collection: str) -> CollectionRow:
        row = self.catalog.collection(collection)
        if row is None:
            raise NotFoundError(
                f"no collection {collection!r}; run `almanac ingest PATH --collection {collection}` "
                "first, or use one that `almanac status` or GET /v1/models lists"
            )
        return row

    def _current(self, row: CollectionRow) -> Snapshot:
        latest = self.catalog.latest_version(row.id)
        wanted = latest.version if latest else 0
        served = self._served.get(row.name)
        if served and served.version == wanted:
            return served
        # One loader at a time; while it works, searches that have a snapshot keep using it.
        if not self._lock.acquire(blocking=served is None):
            assert served is not None
            return served
        try:
            served = self._served.get(row.name)
            if served and served.version == wanted:
                return served
            started = time.perf_counter()
            fresh = self.store.load(self.catalog, row.name, previous=served)
            self._served[row.name] = fresh
            if fresh.rebuilt and self.on_rebuilt is not None:
                self.on_rebuilt(row.name)
            log.info(
                "event=snapshot_loaded collection=%s version=%d vectors=%d segments=%d delta=%s seconds=%.3f",
                row.name,
                fresh.version,
                len(fresh.index),
                len(fresh.index.segments),
                served is not None,
                time.perf_counter() - started,
            )
            return fresh
        finally:
            self._lock.release()

    def warm(self, collection: str) -> None:
        """Load a collection's snapshot ahead of the first query."""
        self._current(self._collection(collection))

    def _embedder(self, row: CollectionRow) -> Embedder:
        """Queries are embedded in the precision the collection's chunks were."""
        if row.precision == self.embedder.precision:
            return self.embedder
        if self.embedder_for is None:
            require_precision(row.name, row.precision, self.embedder.precision)
            return self.embedder
        return self.embedder_for(row.name, row.precision)

    def search(self, query: str, collection: str, top_k: int, where: SearchFilter | None = None) -> list[Hit]:
        """The top_k chunks for one query (only chunks that pass `where`, when given)."""
        return self.search_many([query], collection, top_k, where)[0]

    def search_many(
        self, queries: Sequence[str], collection: str, top_k: int, where: SearchFilter | None = None
    ) -> list[list[Hit]]:
        """Many queries at once: one embedding call for all of them (concurrent requests batch here)."""
        row = self._collection(collection)
        index = self._current(row).index
        allowed = matching_chunk_ids(self.catalog, row.id, where) if where is not None else None
        vectors = self._embedder(row).embed(list(queries))
        n = max(top_k, self.settings.candidates)
        _, dense_ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), n, allowed)
        fused_per_query = []
        for query, found in zip(queries, dense_ids, strict=True):
            dense = [int(i) for i in found if i >= 0]
            lexical = [chunk_id for chunk_id, _ in index.search_lexical(query, n, allowed)]
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
