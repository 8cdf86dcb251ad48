"""Job state in the catalog (table jobs), so that jobs survive a restart, and the progress hook that fills it.

A job's ``progress`` JSON holds ``{items, chunks, total}`` plus two keys the view lifts out: ``message``
(e.g. "waiting for the writer lock ...") and ``report`` (the indexer's report once the job is done). States
move queued -> running -> succeeded | failed; a job found running when the server starts goes back to
queued (ingest is idempotent, so running it again is correct).
"""

from __future__ import annotations

import builtins
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import JobRow, utcnow
from almanac.core.errors import InputError, NotFoundError

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"succeeded", "failed"})


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the API shows it."""

    id: str
    kind: str
    state: str
    collection: str | None
    progress: dict[str, Any]
    errors: list[dict[str, str]]
    report: dict[str, Any] | None
    message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: JobRow) -> JobView:
        """The view of a catalog row."""
        stored = dict(row.progress or {})
        report, message = stored.pop("report", None), stored.pop("message", None)
        progress = {"items": stored.get("items", 0), "chunks": stored.get("chunks", 0)}
        progress["total"] = stored.get("total")
        collection = (row.spec or {}).get("collection")
        return cls(
            row.id,
            row.kind,
            row.state,
            collection,
            progress,
            list(row.errors or []),
            report,
            message,
            row.created_at,
            row.updated_at,
        )

    @property
    def done(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state in FINAL_STATES

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for responses."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "collection": self.collection,
            "progress": self.progress,
            "errors": self.errors,
            "report": self.report,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job the worker took: what to run."""

    id: str
    kind: str
    spec: dict[str, Any]


class JobStore:
    """Typed operations on the jobs table."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, kind: str, spec: dict[str, Any], idempotency_key: str | None = None) -> JobView:
        """A new queued job, or the job already created under `idempotency_key` for the same request."""
        if idempotency_key is not None:
            existing = self.find(idempotency_key, kind, spec)
            if existing is not None:
                return existing
        row = JobRow(
            id="job_" + secrets.token_hex(8),
            kind=kind,
            spec=spec,
            state="queued",
            progress={},
            errors=[],
            idempotency_key=idempotency_key,
        )
        try:
            with self.catalog.transaction() as s:
                s.add(row)
        except IntegrityError:  # a concurrent retry with the same key won the race
            existing = self.find(idempotency_key or "", kind, spec)
            if existing is None:
                raise
            return existing
        log.info("event=job_created job=%s kind=%s", row.id, kind)
        return JobView.of(row)

    def find(self, idempotency_key: str, kind: str, spec: dict[str, Any]) -> JobView | None:
        """The job created under this key, if any; InputError when it was made for another request."""
        with self.catalog.transaction() as s:
            row = s.scalar(select(JobRow).where(JobRow.idempotency_key == idempotency_key))
        if row is None:
            return None
        if row.kind != kind or row.spec != spec:
            raise InputError(
                f"Idempotency-Key already used for job {row.id} with a different request; "
                "send a new key for a new request"
            )
        return JobView.of(row)

    def get(self, job_id: str) -> JobView:
        """The job, or NotFoundError."""
        with self.catalog.transaction() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job {job_id!r}; GET /v1/jobs lists the jobs")
            return JobView.of(row)

    def list(self, limit: int = 50, offset: int = 0, collection: str | None = None) -> list[JobView]:
        """Jobs, newest first; only `collection`'s when given (filtered before the page is cut)."""
        query = select(JobRow)
        if collection is not None:
            query = query.where(JobRow.spec["collection"].as_string() == collection)
        query = query.order_by(JobRow.created_at.desc(), JobRow.id).offset(offset).limit(limit)
        with self.catalog.transaction() as s:
            return [JobView.of(row) for row in s.scalars(query)]

    def claim_next(self) -> ClaimedJob | None:
        """Mark the oldest queued job running and return it; None when none is queued."""
        with self.catalog.transaction() as s:
            query = select(JobRow).where(JobRow.state == "queued").order_by(JobRow.created_at, JobRow.id)
            row = s.scalar(query.limit(1))
            if row is None:
                return None
            # The state guard makes the claim atomic even if another process looks at the same row.
            claimed = cast(  # an UPDATE returns a CursorResult; Session.execute is typed as Result
                CursorResult[Any],
                s.execute(
                    update(JobRow)
                    .where(JobRow.id == row.id, JobRow.state == "queued")
                    .values(state="running", updated_at=utcnow())
                ),
            )
            if claimed.rowcount != 1:
                return None
            return ClaimedJob(row.id, row.kind, dict(row.spec))

    def requeue_running(self) -> builtins.list[str]:  # `list` here is the method above
        """Put jobs left running by a stopped server back in the queue; returns their ids."""
        with self.catalog.transaction() as s:
            ids = list(s.scalars(select(JobRow.id).where(JobRow.state == "running")))
            if ids:
                s.execute(
                    update(JobRow).where(JobRow.id.in_(ids)).values(state="queued", updated_at=utcnow())
                )
        return ids

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Store the progress JSON."""
        with self.catalog.transaction() as s:
            s.execute(
                update(JobRow).where(JobRow.id == job_id).values(progress=progress, updated_at=utcnow())
            )

    def finish(
        self, job_id: str, state: str, progress: dict[str, Any], errors: builtins.list[dict[str, str]]
    ) -> None:
        """Record the final (or, when interrupted, queued) state."""
        with self.catalog.transaction() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(state=state, progress=progress, errors=errors, updated_at=utcnow())
            )


class JobInterruptedError(Exception):
    """Raised inside a job when the runner stops; the job goes back to the queue."""


class JobProgress:
    """indexer.report.Progress that writes a job's counters to the catalog, at most every `interval_s`."""

    def __init__(
        self, store: JobStore, job_id: str, stopping: threading.Event, interval_s: float = 0.5
    ) -> None:
        self.store, self.job_id, self.stopping, self.interval_s = store, job_id, stopping, interval_s
        self.state: dict[str, Any] = {"items": 0, "chunks": 0, "total": None}
        self._written = 0.0

    def start(self, total_items: int | None) -> None:
        """Work begins (counters restart: a resumed job counts again from zero)."""
        self.state.update(items=0, chunks=0, total=total_items)
        self.flush()

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """Count; write when the interval passed; stop the job between items when the runner stops."""
        self.state["items"] += items
        self.state["chunks"] += chunks
        if self.stopping.is_set():
            raise JobInterruptedError
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
        """Write the counters now."""
        self._written = time.monotonic()
        self.store.set_progress(self.job_id, dict(self.state))
