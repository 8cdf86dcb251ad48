"""Micro-batching of concurrent searches: many queries, one embedding call.

Searches run on threadpool threads. The first search of a batch leads it: when other searches are already in
flight (the server is busy) it waits `window_s` for more queries of the same collection to join, then runs one
`Retriever.search_many` for the whole batch and hands each caller its slice. An idle server adds no wait.

One batch per collection runs at a time. While it runs, the next batch stays open and every query that
arrives joins it, so batches grow with the load instead of many small batches fighting for the same cores
(on 2 cores, concurrent 2-query batches gave 32 clients only 1.1-1.6x the throughput of one).

Queries only share a batch when their fused rankings are cut from the same candidate lists, i.e. the same
``max(top_k, candidates)`` and the same filter (`SearchFilter`, compared by value); each caller's hits are
then exactly a prefix of the batch's, the same as a search of its own. Batches of different filters on one
collection take turns, like any two batches of that collection.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from almanac.core.search_filter import SearchFilter
from almanac.core.types import Hit
from almanac.server.retrieval.retriever import Retriever

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    query: str
    top_k: int
    result: Future[list[Hit]] = field(default_factory=Future)


@dataclass(slots=True)
class _Batch:
    items: list[_Item] = field(default_factory=list)


_Key = tuple[str, int, SearchFilter | None]  # collection, candidates, filter: who may share a batch


class SearchBatcher:
    """Thread-safe `search(query, collection, top_k, where)` that batches concurrent callers."""

    def __init__(self, retriever: Retriever, window_s: float = 0.003, max_batch: int = 64) -> None:
        self.retriever, self.window_s, self.max_batch = retriever, window_s, max_batch
        self._lock = threading.Lock()
        self._open: dict[_Key, _Batch] = {}
        # held while a batch of that collection and candidate count runs (keyed without the filter, so
        # distinct filters do not pile up locks)
        self._running: dict[tuple[str, int], threading.Lock] = {}
        self._active = 0
        self.batches = 0  # batches run so far (for tests and metrics)

    def search(self, query: str, collection: str, top_k: int, where: SearchFilter | None = None) -> list[Hit]:
        """The top_k hits for `query` among the chunks that pass `where`, as `Retriever.search` gives them."""
        key = (collection, max(top_k, self.retriever.settings.candidates), where)
        item = _Item(query, top_k)
        with self._lock:
            self._active += 1
            batch = self._open.get(key)
            leader = batch is None or len(batch.items) >= self.max_batch
            if batch is None or leader:  # `batch is None` implies leader; spelled out for the type checker
                batch = self._open[key] = _Batch()
            batch.items.append(item)
            busy = self._active > 1
        try:
            if leader:
                self._lead(key, batch, busy)
            return item.result.result()
        finally:
            with self._lock:
                self._active -= 1

    def _lead(self, key: _Key, batch: _Batch, busy: bool) -> None:
        if busy:
            time.sleep(self.window_s)  # let concurrent queries join this batch
        with self._lock:
            running = self._running.setdefault(key[:2], threading.Lock())
        with running:  # the batch keeps collecting queries until the one before it has finished
            with self._lock:
                if self._open.get(key) is batch:
                    del self._open[key]  # closed: later queries start a new batch
            self._run(key[0], key[2], batch.items)

    def _run(self, collection: str, where: SearchFilter | None, items: list[_Item]) -> None:
        queries, top_k = [i.query for i in items], max(i.top_k for i in items)
        try:
            if where is None:  # the unfiltered call keeps its old form (retriever stand-ins use it)
                hits = self.retriever.search_many(queries, collection, top_k)
            else:
                hits = self.retriever.search_many(queries, collection, top_k, where=where)
        except BaseException as exc:
            for item in items:
                item.result.set_exception(exc)
            return
        self.batches += 1
        for item, found in zip(items, hits, strict=True):
            item.result.set_result(found[: item.top_k])
