"""A running job's progress in the catalog, and the ways it stops early between items.

`JobProgress` is the indexer's Progress hook for a job: it counts items and chunks, works out a rate and an
ETA, writes them to the job's row at most every `interval_s`, and between items calls `check`, which raises
one of the errors below when the job must stop:

- JobInterruptedError: the server is stopping, or the job's fair-share slice is over (it goes back to the
  queue and resumes; committed work is skipped as unchanged);
- JobCancelledError: a client cancelled it (DELETE /v1/jobs/{id}); what was committed stays.

Both are indexer.report.StopRun: the indexer commits the files it has read before it stops, so a job that
yields its turn always moves forward.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from almanac.core.errors import LockedError
from almanac.indexer.report import StopRun
from almanac.indexer.writer_lock import WriterLock
from almanac.server.jobs.fair_share import FairShare
from almanac.server.jobs.store import JobStore

log = logging.getLogger(__name__)


class JobInterruptedError(StopRun):
    """Raised inside a job when it must give the worker up; the job goes back to the queue."""


class JobCancelledError(StopRun):
    """Raised inside a job a client cancelled; the job ends cancelled."""


class JobProgress:
    """indexer.report.Progress that writes a job's counters to the catalog, at most every `interval_s`."""

    def __init__(
        self, store: JobStore, job_id: str, check: Callable[[], None], interval_s: float = 0.5
    ) -> None:
        self.store, self.job_id, self.check, self.interval_s = store, job_id, check, interval_s
        self.state: dict[str, Any] = {"items": 0, "chunks": 0, "total": None}
        self._written = 0.0
        self._started = time.monotonic()
        self._stopping = False  # once `check` has stopped the job, the commit of what was read goes on

    def start(self, total_items: int | None) -> None:
        """Work begins (counters restart: a resumed job counts again from zero)."""
        self._started = time.monotonic()
        self.state.update(items=0, chunks=0, total=total_items)
        self.flush()

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """Count; write when the interval passed; stop the job between items when `check` says so."""
        self.state["items"] += items
        self.state["chunks"] += chunks
        if not self._stopping:
            try:
                self.check()
            except StopRun:
                self._stopping = True
                raise
        if time.monotonic() - self._written >= self.interval_s:
            self.flush()

    def note(self, message: str | None) -> None:
        """Show a message (or clear it) in the job's state right away."""
        if message is None:
            self.state.pop("message", None)
        else:
            self.state["message"] = message
        self.flush()

    def flush(self) -> None:
        """Write the counters, the rate (chunks/s) and the ETA (seconds, when the item total is known)."""
        self._written = time.monotonic()
        elapsed = max(self._written - self._started, 1e-6)
        items, total = self.state["items"], self.state["total"]
        self.state["chunks_per_s"] = round(self.state["chunks"] / elapsed, 1)
        self.state["eta_s"] = round((total - items) * elapsed / items, 1) if total and items else None
        self.store.set_progress(self.job_id, dict(self.state))


class StopSignals:
    """Why a running job stops between items: the server stops, a client cancelled it (`cancelled`), or
    its fair-share slice is over while another owner waits (`others_queued(owner)`, asked once a second)."""

    def __init__(
        self, stopping: threading.Event, share: FairShare, others_queued: Callable[[str], bool]
    ) -> None:
        self.stopping, self.share, self.others_queued = stopping, share, others_queued
        self.cancelled: set[str] = set()  # running jobs a client cancelled
        self._others_checked = (0.0, False)  # (when, whether another owner had a job queued)

    def check(self, job_id: str, owner: str, started: float) -> None:
        """Raise JobInterruptedError or JobCancelledError when the job must stop now."""
        if self.stopping.is_set():
            raise JobInterruptedError
        if job_id in self.cancelled:
            raise JobCancelledError
        now = time.monotonic()
        if not self.share.should_yield(started, now, others_waiting=True):
            return
        checked_at, others = self._others_checked
        if now - checked_at >= min(1.0, self.share.slice_s / 4):
            others = self.others_queued(owner)
            self._others_checked = (now, others)
        if others:
            log.info("event=job_yielded job=%s owner=%s after_s=%.0f", job_id, owner, now - started)
            raise JobInterruptedError


@contextmanager
def writer_lock(home: Path, poll_s: float, progress: JobProgress) -> Iterator[None]:
    """Hold the writer lock, waiting (and saying so in the job) while another writer has it; the job's
    `check` runs between tries, so a waiting job can be stopped, cancelled or yield its turn."""
    while True:
        lock = WriterLock(home, poll_s)
        try:
            lock.__enter__()
            break
        except LockedError as exc:
            if "message" not in progress.state:
                holder = str(exc).split(";")[0]
                progress.note(f"waiting for the writer lock: {holder}")
            progress.check()
    try:
        if "message" in progress.state:
            progress.note(None)
        yield
    finally:
        lock.__exit__(None, None, None)
