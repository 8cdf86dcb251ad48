"""The bounded queue in front of the chat model.

One model holds one lock, so generations run one at a time on a worker thread (never on the event loop). At
most `size` jobs wait or run; one more is refused at once with OverloadedError (429 with Retry-After, never a
hang). Retry-After estimates how long the work already queued takes, from a running mean of job durations.

    >>> queue = ModelQueue(size=2)
    >>> queue.submit(lambda: 6 * 7).result()
    42
    >>> queue.close()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from almanac.core.errors import OverloadedError

log = logging.getLogger(__name__)

T = TypeVar("T")
_MEAN_WEIGHT = 0.2  # weight of the newest job in the running mean of durations


class ModelQueue:
    """At most `size` model jobs waiting or running; `workers` run at once (1: the model is serialised)."""

    def __init__(self, size: int, workers: int = 1) -> None:
        self.size, self.workers = size, workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="almanac-model")
        self._lock = threading.Lock()
        self._depth = 0
        self._mean_s = 1.0
        self._closed = False

    @property
    def depth(self) -> int:
        """Jobs waiting or running now."""
        return self._depth

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queued work divided among the workers."""
        return max(1, min(300, math.ceil(self._mean_s * max(self._depth, 1) / self.workers)))

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue `job`; raises OverloadedError when `size` jobs already wait or run."""
        with self._lock:
            if self._closed:
                raise OverloadedError("the server is shutting down; retry on another instance", 5)
            if self._depth >= self.size:
                retry = self.retry_after()
                log.warning("event=queue_full depth=%d size=%d retry_after=%d", self._depth, self.size, retry)
                raise OverloadedError(
                    f"the model queue is full ({self.size} requests waiting or running); "
                    f"retry after {retry} s",
                    retry,
                )
            self._depth += 1
        try:
            future = self._executor.submit(self._timed, job)
        except RuntimeError:  # executor shut down between the check and the submit
            self._release()
            raise OverloadedError("the server is shutting down; retry on another instance", 5) from None
        future.add_done_callback(lambda _f: self._release())
        return future

    def _timed(self, job: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return job()
        finally:
            elapsed = time.perf_counter() - started
            self._mean_s = (1 - _MEAN_WEIGHT) * self._mean_s + _MEAN_WEIGHT * elapsed

    def _release(self) -> None:
        with self._lock:
            self._depth -= 1

    def drain(self, timeout_s: float) -> bool:
        """Wait until no job waits or runs (True), or `timeout_s` passes (False). New jobs still queue."""
        deadline = time.monotonic() + timeout_s
        while self._depth > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self, wait: bool = True) -> None:
        """Refuse new jobs; with `wait`, let queued and running ones finish (the drain on shutdown)."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
