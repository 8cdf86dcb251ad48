"""The bounded, fair queue in front of the chat model.

One model holds one lock, so generations run one at a time on a worker thread (never on the event loop). At
most `size` jobs are reserved, waiting or running; one more is refused at once with OverloadedError (429 with
Retry-After, never a hang). Retry-After estimates how long the work already queued takes, from a running
mean of job durations.

Waiting jobs are served round-robin across clients (an API key, or an IP): a client with fifty jobs waiting
delays another client's single job by at most one of its own, not fifty. A request reserves its slot first
(`reserve`), before its retrieval runs, so a full queue refuses it before any work is spent on it.

    >>> queue = ModelQueue(size=2)
    >>> queue.submit(lambda: 6 * 7).result()
    42
    >>> with queue.reserve("key:alm_1a2b3c4d") as slot:   # admitted; unused slots are freed on exit
    ...     slot.submit(lambda: "answer").result()
    'answer'
    >>> queue.close()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from almanac.core.errors import OverloadedError

log = logging.getLogger(__name__)

T = TypeVar("T")
_MEAN_WEIGHT = 0.2  # weight of the newest job in the running mean of durations
_Job = tuple[Callable[[], Any], "Future[Any]"]


def _shutting_down() -> OverloadedError:
    return OverloadedError("the server is shutting down; retry on another instance", 5)


class Slot:
    """A reserved place in the queue: `submit` one job into it, or leave it (`release`, or the with-block)."""

    def __init__(self, queue: ModelQueue, client: str) -> None:
        self.queue, self.client, self._held = queue, client, True

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue `job` in this slot (once); the future holds its result."""
        if not self._held:
            raise RuntimeError("this queue slot was already used or released")
        self._held = False
        return self.queue._enqueue(self.client, job)

    def release(self) -> None:
        """Give the slot back unused (no-op once a job was submitted)."""
        if self._held:
            self._held = False
            self.queue._release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class ModelQueue:
    """At most `size` model jobs reserved, waiting or running; `workers` run at once (1: serialised)."""

    def __init__(self, size: int, workers: int = 1) -> None:
        self.size, self.workers = size, workers
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiting: OrderedDict[str, deque[_Job]] = OrderedDict()  # round-robin order of clients
        self._depth = 0
        self._mean_s = 1.0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"almanac-model-{i}", daemon=True)
            for i in range(workers)
        ]
        self._started = False  # the workers start with the first job

    @property
    def depth(self) -> int:
        """Jobs reserved, waiting or running now."""
        return self._depth

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queued work divided among the workers."""
        return max(1, min(300, math.ceil(self._mean_s * max(self._depth, 1) / self.workers)))

    def reserve(self, client: str = "") -> Slot:
        """A slot for `client`'s next job; raises OverloadedError when `size` are already taken."""
        with self._lock:
            if self._closed:
                raise _shutting_down()
            if self._depth >= self.size:
                retry = self.retry_after()
                log.warning("event=queue_full depth=%d size=%d retry_after=%d", self._depth, self.size, retry)
                raise OverloadedError(
                    f"the model queue is full ({self.size} requests waiting or running); "
                    f"retry after {retry} s",
                    retry,
                )
            self._depth += 1
        return Slot(self, client)

    def submit(self, job: Callable[[], T], client: str = "") -> Future[T]:
        """Reserve a slot and queue `job`; raises OverloadedError when the queue is full."""
        return self.reserve(client).submit(job)

    def _enqueue(self, client: str, job: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                self._depth -= 1
                raise _shutting_down()
            self._waiting.setdefault(client, deque()).append((job, future))
            self._ready.notify()
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()
        future.add_done_callback(lambda f: self._release() if f.cancelled() else None)
        return future

    def _next(self) -> _Job | None:
        """The next job round-robin (lock held); None when stopping with nothing left."""
        while not self._waiting and not self._closed:
            self._ready.wait()
        if not self._waiting:
            return None
        client, jobs = self._waiting.popitem(last=False)
        job = jobs.popleft()
        if jobs:
            self._waiting[client] = jobs  # to the back of the round
        return job

    def _work(self) -> None:
        while True:
            with self._lock:
                item = self._next()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while waiting; its done callback freed the slot
            started = time.perf_counter()
            try:
                result = job()
            except BaseException as exc:  # handed to the waiting request
                self._finish(started)
                future.set_exception(exc)
            else:
                self._finish(started)
                future.set_result(result)

    def _finish(self, started: float) -> None:
        elapsed = time.perf_counter() - started
        self._mean_s = (1 - _MEAN_WEIGHT) * self._mean_s + _MEAN_WEIGHT * elapsed
        self._release()

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
        """Refuse new jobs; with `wait`, let queued and running ones finish (the drain on shutdown), else
        cancel the waiting ones."""
        with self._lock:
            self._closed = True
            dropped = [] if wait else [f for jobs in self._waiting.values() for _, f in jobs]
            if not wait:
                self._waiting.clear()
            self._ready.notify_all()
        for future in dropped:
            future.cancel()
        if wait:
            for thread in self._threads:
                if thread.is_alive() and thread is not threading.current_thread():
                    thread.join()
