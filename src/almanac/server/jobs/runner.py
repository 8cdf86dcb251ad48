"""Ingestion jobs run one at a time by one worker thread, through the indexer pipeline, as the one writer.

Kinds a client may submit (POST /v1/jobs):
    folder     {path, collection}                  a folder under one of settings.server.job_roots
    database   {source, tables, collection}        a registered source (or, given a URL, registered here)
Kinds the server submits itself: ``upload`` (files saved by POST /v1/documents) and ``delete``.

Each job holds almanac.indexer.writer_lock.WriterLock while it runs; when another writer (say `almanac
ingest` in a shell) holds it, the job waits and its ``message`` says by whom. The indexer commits in batches
and publishes a new index version per batch, which the Retriever picks up on its next search. `stop()` ends
the running job between items and puts it back in the queue; `start()` requeues jobs a dead server left
running, so every job eventually runs to the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from almanac.core.catalog import Catalog
from almanac.core.errors import AlmanacError, LockedError
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer
from almanac.indexer.report import Progress
from almanac.indexer.writer_lock import WriterLock
from almanac.server.jobs.kinds import JobKinds, job_target
from almanac.server.jobs.request import JobRequest
from almanac.server.jobs.store import JobInterruptedError, JobProgress, JobStore, JobView

log = logging.getLogger(__name__)

IndexerFactory = Callable[[Progress], Indexer]


class JobRunner:
    """Queues jobs in the catalog and runs them in one worker thread.

    `indexer_factory(progress)` builds the pipeline for one job (the server's shared embedder inside).
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        indexer_factory: IndexerFactory,
        *,
        poll_s: float = 2.0,
        lock_poll_s: float = 1.0,
    ) -> None:
        self.settings, self.catalog, self.indexer_factory = settings, catalog, indexer_factory
        self.store = JobStore(catalog)
        self.requests = JobRequest(settings, catalog)
        self.kinds = JobKinds(catalog)
        self.poll_s, self.lock_poll_s = poll_s, lock_poll_s
        self._stopping = threading.Event()
        self._changed = threading.Condition()  # notified on submit (wakes the worker) and on each finish
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Requeue interrupted jobs and start the worker (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        resumed = self.store.requeue_running()
        if resumed:
            log.warning("event=jobs_resumed count=%d jobs=%s", len(resumed), ",".join(resumed))
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="almanac-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current item; an unfinished job goes back to the queue."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("event=job_worker_still_running after_s=%s", timeout_s)
        self._thread = None

    # -- API -------------------------------------------------------------------------------------
    def submit(
        self,
        body: dict[str, Any],
        idempotency_key: str | None = None,
        visible: Callable[[str], bool] | None = None,
    ) -> JobView:
        """Validate and queue a client job (`folder` or `database`); same key, same job.

        `visible(source)` scopes a bound caller's database jobs to its collection's sources.
        """
        kind, spec = self.requests.client_job(body, visible)
        return self._queue(kind, spec, idempotency_key)

    def submit_upload(
        self, paths: list[Path], digests: list[str], collection: str, idempotency_key: str | None = None
    ) -> JobView:
        """Queue the ingest of files already saved under the uploads folder (`digests`: their sha256)."""
        return self._queue("upload", _upload_spec(paths, digests, collection), idempotency_key)

    def find_upload(
        self, paths: list[Path], digests: list[str], collection: str, idempotency_key: str
    ) -> JobView | None:
        """The upload job already made under this key for the same files; InputError for other files."""
        return self.store.find(idempotency_key, "upload", _upload_spec(paths, digests, collection))

    def submit_delete(self, sources: list[str], collection: str, files: list[Path]) -> JobView:
        """Queue the removal of documents (and of the uploaded `files` behind them)."""
        spec = {"sources": sources, "collection": collection, "files": [str(f) for f in files]}
        return self._queue("delete", spec, None)

    def get(self, job_id: str) -> JobView:
        """The job's current state."""
        return self.store.get(job_id)

    def list(self, limit: int = 50, offset: int = 0, collection: str | None = None) -> list[JobView]:
        """Jobs, newest first; only `collection`'s when given."""
        return self.store.list(limit, offset, collection)

    def wait(self, job_id: str, timeout_s: float) -> JobView:
        """The job once it is done, or as it stands after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:  # read under the condition so a finish between read and wait is not missed
            while True:
                job = self.store.get(job_id)
                left = deadline - time.monotonic()
                if job.done or left <= 0:
                    return job
                self._changed.wait(min(self.poll_s, left))

    async def wait_async(self, job_id: str, timeout_s: float) -> JobView:
        """`wait` for the event loop: polls the catalog (backing off to 0.25 s) without holding a thread."""
        deadline = time.monotonic() + timeout_s
        pause = 0.02
        while True:
            job = await anyio.to_thread.run_sync(self.store.get, job_id)
            left = deadline - time.monotonic()
            if job.done or left <= 0:
                return job
            await anyio.sleep(min(pause, left))
            pause = min(pause * 2, 0.25)

    def _queue(self, kind: str, spec: dict[str, Any], idempotency_key: str | None) -> JobView:
        job = self.store.create(kind, spec, idempotency_key)
        with self._changed:
            self._changed.notify_all()
        return job

    # -- worker ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next()
            except Exception:  # the catalog is down: keep the worker alive and retry
                log.exception("event=job_claim_failed")
                job = None
            if job is None:
                with self._changed:
                    self._changed.wait(self.poll_s)
                continue
            try:
                self._run(job.id, job.kind, job.spec)
            except Exception:  # recording the outcome failed; the job stays running and resumes on restart
                log.exception("event=job_state_lost job=%s", job.id)
            with self._changed:
                self._changed.notify_all()

    def _run(self, job_id: str, kind: str, spec: dict[str, Any]) -> None:
        progress = JobProgress(self.store, job_id, self._stopping)
        log.info("event=job_started job=%s kind=%s", job_id, kind)
        errors: list[dict[str, str]] = []
        try:
            with self._writer_lock(progress):
                report = self.kinds.execute(kind, spec, self.indexer_factory(progress))
            progress.state["report"] = report
            errors = report["failed"]
            state = "succeeded"
        except JobInterruptedError:
            state = "queued"  # resumes on the next start
        except AlmanacError as exc:
            errors, state = [{"source": job_target(kind, spec), "reason": str(exc)}], "failed"
        except Exception as exc:
            log.exception("event=job_crashed job=%s", job_id)
            reason = f"internal error ({type(exc).__name__}); see the server log"
            errors, state = [{"source": job_target(kind, spec), "reason": reason}], "failed"
        progress.state.pop("message", None)
        self.store.finish(job_id, state, progress.state, errors)
        log.info("event=job_finished job=%s state=%s errors=%d", job_id, state, len(errors))

    @contextmanager
    def _writer_lock(self, progress: JobProgress) -> Iterator[None]:
        """Hold the writer lock, waiting (and saying so in the job) while another writer has it."""
        while True:
            lock = WriterLock(self.settings.home, self.lock_poll_s)
            try:
                lock.__enter__()
                break
            except LockedError as exc:
                if "message" not in progress.state:
                    holder = str(exc).split(";")[0]
                    progress.note(f"waiting for the writer lock: {holder}")
                if self._stopping.is_set():
                    raise JobInterruptedError from None
        try:
            if "message" in progress.state:
                progress.note(None)
            yield
        finally:
            lock.__exit__(None, None, None)


def _upload_spec(paths: list[Path], digests: list[str], collection: str) -> dict[str, Any]:
    return {"paths": [str(p) for p in paths], "sha256": digests, "collection": collection}
