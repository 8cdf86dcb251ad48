"""The search micro-batcher: concurrent queries share one Retriever.search_many call, results unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from almanac.core.settings import RetrievalSettings
from almanac.core.types import Hit
from almanac.server.retrieval.search_batcher import SearchBatcher


class RecordingRetriever:
    """Hits derived from the query text; the first call blocks until `release` is set."""

    def __init__(self) -> None:
        self.settings = RetrievalSettings()
        self.calls: list[list[str]] = []
        self.release, self.first_started = threading.Event(), threading.Event()

    def search_many(self, queries: Sequence[str], collection: str, top_k: int) -> list[list[Hit]]:
        self.calls.append(list(queries))
        if len(self.calls) == 1:
            self.first_started.set()
            self.release.wait(10)
        return [
            [Hit(i, 1.0 / (i + 1), f"{q}#{i}", collection, "", "document") for i in range(top_k)]
            for q in queries
        ]


def test_concurrent_queries_are_embedded_in_one_batch_and_sliced_per_caller() -> None:
    retriever = RecordingRetriever()
    batcher = SearchBatcher(retriever, window_s=0.5)  # type: ignore[arg-type]
    with ThreadPoolExecutor(16) as pool:
        first = pool.submit(batcher.search, "q0", "c", 2)
        assert retriever.first_started.wait(5)  # the server is busy: later queries wait for company
        rest = [pool.submit(batcher.search, f"q{i}", "c", 1 + i % 3) for i in range(1, 16)]
        threading.Timer(0.2, retriever.release.set).start()
        results = [first.result(10)] + [f.result(10) for f in rest]

    assert retriever.calls[0] == ["q0"]
    assert sorted(retriever.calls[1]) == sorted(f"q{i}" for i in range(1, 16))  # one call for all 15
    assert len(retriever.calls) == 2
    for i, hits in enumerate(results):
        k = 2 if i == 0 else 1 + i % 3
        assert [h.text for h in hits] == [f"q{i}#{j}" for j in range(k)]


def test_queries_arriving_while_a_batch_runs_join_the_next_batch_even_without_a_window() -> None:
    retriever = RecordingRetriever()
    batcher = SearchBatcher(retriever, window_s=0.0)  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.search, "q0", "c", 1)
        assert retriever.first_started.wait(5)
        rest = []
        for i in range(1, 6):  # one at a time: without the one-batch-in-flight rule each would run alone
            rest.append(pool.submit(batcher.search, f"q{i}", "c", 1))
            threading.Event().wait(0.05)
        retriever.release.set()
        assert [f.result(10)[0].text for f in [first, *rest]] == [f"q{i}#0" for i in range(6)]

    assert len(retriever.calls) == 2
    assert sorted(retriever.calls[1]) == [f"q{i}" for i in range(1, 6)]


def test_an_idle_batcher_runs_a_lone_search_without_waiting_for_the_window() -> None:
    retriever = RecordingRetriever()
    retriever.release.set()  # searches return at once: the elapsed time is the batcher's own wait
    window_s = 0.5
    batcher = SearchBatcher(retriever, window_s=window_s)  # type: ignore[arg-type]
    started = time.perf_counter()
    hits = batcher.search("q", "c", 1)
    elapsed = time.perf_counter() - started

    assert [h.text for h in hits] == ["q#0"] and retriever.calls == [["q"]]
    assert elapsed < window_s / 2  # a waiting batcher would take the whole window


class FailingRetriever(RecordingRetriever):
    """Every search fails (after the first has blocked until `release`), each with an error of its own."""

    def search_many(self, queries: Sequence[str], collection: str, top_k: int) -> list[list[Hit]]:
        super().search_many(queries, collection, top_k)
        raise ValueError(f"broken index (search {len(self.calls)})")


def test_a_failed_search_raises_its_error_in_every_caller_of_the_batch() -> None:
    retriever = FailingRetriever()
    batcher = SearchBatcher(retriever, window_s=0.05)  # type: ignore[arg-type]
    entered = threading.Semaphore(0)

    def search(query: str) -> list[Hit]:
        entered.release()
        return batcher.search(query, "c", 1)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(search, "q0")
        assert retriever.first_started.wait(5)  # busy: the next callers queue up in one batch
        rest = [pool.submit(search, f"q{i}") for i in range(1, 6)]
        for _ in range(6):
            assert entered.acquire(timeout=5)
        threading.Event().wait(0.2)  # from entering search() to joining the batch takes microseconds
        retriever.release.set()
        errors = [f.exception(10) for f in rest]

    assert str(first.exception(10)) == "broken index (search 1)"
    assert sorted(retriever.calls[1]) == [f"q{i}" for i in range(1, 6)] and len(retriever.calls) == 2
    assert all(isinstance(e, ValueError) for e in errors)
    assert {str(e) for e in errors} == {"broken index (search 2)"}  # the batch's one error, for all five
