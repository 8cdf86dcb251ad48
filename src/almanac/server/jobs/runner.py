"""Ingestion jobs run one at a time by one worker thread, through the indexer pipeline, as the one writer.

Kinds a client may submit (POST /v1/jobs):
    folder     {path, collection}                  a folder under one of settings.server.job_roots
    database   {source, tables, collection}        a registered source (or, given a URL, registered here)
Kinds the server submits itself: ``upload`` (files saved by POST /v1/documents) and ``delete``.

Each job holds almanac.indexer.writer_lock.WriterLock while it runs; when another writer (say `almanac
ingest` in a shell) holds it, the job waits and its ``message`` says by whom. The indexer commits in batches
and publishes a new index version per batch, which the Retriever picks up on its next search. `stop()` ends
the running job between items and puts it back in the queue; `start()` requeues jobs a dead server left
running, so every job eventually runs to the end. `cancel()` ends a job for good (DELETE /v1/jobs/{id}).
Keys share the worker fairly (server/jobs/fair_share.py): owners take turns, and a job that has run for
``server.job_slice_s`` while another key waits goes back to the queue between items.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.exc import InterfaceError, OperationalError

from almanac.core.catalog import Catalog
from almanac.core.errors import AlmanacError
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer
from almanac.indexer.report import Progress
from almanac.server.jobs.fair_share import OPEN_OWNER, FairShare
from almanac.server.jobs.kinds import JobKinds, job_target
from almanac.server.jobs.progress import (
    JobCancelledError,
    JobInterruptedError,
    JobProgress,
    StopSignals,
    writer_lock,
)
from almanac.server.jobs.request import JobRequest
from almanac.server.jobs.store import JobStore, JobView

log = logging.getLogger(__name__)

CATALOG_LOST = (OperationalError, InterfaceError)  # the catalog database is down or unreachable

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
        self.kinds = JobKinds(catalog, settings.server.max_job_text_chars or None)
        self.poll_s, self.lock_poll_s = poll_s, lock_poll_s
        self._stopping = threading.Event()
        self.share = FairShare(settings.server.job_slice_s)
        self.signals = StopSignals(self._stopping, self.share, self.store.others_queued)
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
        owner: str = OPEN_OWNER,
    ) -> JobView:
        """Validate and queue a client job (`folder` or `database`); same key, same job.

        `visible(source)` scopes a bound caller's database jobs to its collection's sources; `owner` (the
        caller's key prefix) gets its fair share of the worker.
        """
        kind, spec = self.requests.client_job(body, visible)
        return self._queue(kind, spec | {"owner": owner}, idempotency_key)

    def submit_upload(
        self,
        paths: list[Path],
        digests: list[str],
        collection: str,
        idempotency_key: str | None = None,
        owner: str = OPEN_OWNER,
    ) -> JobView:
        """Queue the ingest of files already saved under the uploads folder (`digests`: their sha256)."""
        return self._queue("upload", _upload_spec(paths, digests, collection, owner), idempotency_key)

    def find_upload(
        self, paths: list[Path], digests: list[str], collection: str, idempotency_key: str, owner: str
    ) -> JobView | None:
        """The upload job already made under this key for the same files; InputError for other files."""
        return self.store.find(idempotency_key, "upload", _upload_spec(paths, digests, collection, owner))

    def submit_delete(self, sources: list[str], collection: str, files: list[Path]) -> JobView:
        """Queue the removal of documents (and of the uploaded `files` behind them)."""
        spec = {"sources": sources, "collection": collection, "files": [str(f) for f in files]}
        return self._queue("delete", spec, None)

    def submit_repair(self, collection: str) -> JobView | None:
        """Queue the rewrite of a collection's index from the catalog (its files failed verification), unless
        a repair of it is already queued or running; returns the new job."""
        if self.store.active("repair", collection):
            return None
        log.warning("event=index_repair_queued collection=%s", collection)
        return self._queue("repair", {"collection": collection, "owner": "server"}, None)

    def get(self, job_id: str) -> JobView:
        """The job's current state."""
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job: a queued one at once, a running one between items (committed work stays)."""
        before = self.store.get(job_id)
        job = self.store.cancel(job_id)
        if job.state == "cancelling":
            self.signals.cancelled.add(job_id)
        elif before.state == "queued" and job.state == "cancelled":
            kind, spec = self.store.spec_of(job_id)
            self.kinds.discard_refused(kind, spec)
        return job

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
                job = self.store.claim_next(self.share.pick)
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
        owner, started = spec.get("owner", OPEN_OWNER), time.monotonic()
        self.share.served(owner, started)
        progress = JobProgress(self.store, job_id, partial(self.signals.check, job_id, owner, started))
        log.info("event=job_started job=%s kind=%s owner=%s", job_id, kind, owner)
        errors: list[dict[str, str]] = []
        try:
            with writer_lock(self.settings.home, self.lock_poll_s, progress):
                report = self.kinds.execute(kind, spec, self.indexer_factory(progress))
            progress.state["report"] = report
            errors = report["failed"]
            state = "succeeded"
        except JobInterruptedError:
            state = "queued"  # resumes on a later turn or the next start
        except JobCancelledError:
            state = "cancelled"
        except CATALOG_LOST as exc:  # the catalog went away: run the job again once it is back
            log.warning("event=job_catalog_lost job=%s reason=%s", job_id, str(exc).splitlines()[0][:200])
            state = "queued"
        except AlmanacError as exc:
            errors, state = [{"source": job_target(kind, spec), "reason": str(exc)}], "failed"
        except Exception as exc:
            log.exception("event=job_crashed job=%s", job_id)
            reason = f"internal error ({type(exc).__name__}); see the server log"
            errors, state = [{"source": job_target(kind, spec), "reason": reason}], "failed"
        self.signals.cancelled.discard(job_id)
        if state in ("cancelled", "failed") or errors:
            self.kinds.discard_refused(kind, spec)
        progress.state.pop("message", None)
        self._record(job_id, state, progress.state, errors)
        log.info("event=job_finished job=%s state=%s errors=%d", job_id, state, len(errors))

    def _record(
        self, job_id: str, state: str, progress: dict[str, Any], errors: builtins.list[dict[str, str]]
    ) -> None:
        """Store a job's outcome, retrying while the catalog cannot be reached (until the runner stops; a
        job still marked running is requeued by the next start)."""
        while True:
            try:
                self.store.finish(job_id, state, progress, errors)
                return
            except CATALOG_LOST:
                if self._stopping.wait(self.poll_s):
                    raise


def _upload_spec(paths: list[Path], digests: list[str], collection: str, owner: str) -> dict[str, Any]:
    return {"paths": [str(p) for p in paths], "sha256": digests, "collection": collection, "owner": owner}
