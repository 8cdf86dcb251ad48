"""Job state in the catalog (table jobs), so that jobs survive a restart, and the progress hook that fills it.

A job's ``progress`` JSON holds ``{items, chunks, total}`` plus two keys the view lifts out: ``message``
(e.g. "waiting for the writer lock ...") and ``report`` (the indexer's report once the job is done). States
move queued -> running -> succeeded | failed, or to cancelled (DELETE /v1/jobs/{id}: at once when queued,
through ``cancelling`` between items when running). A job found running when the server starts goes back
to queued (ingest is idempotent, so running it again is correct); one found cancelling ends cancelled.
A job's owner (the key prefix that queued it) is kept in its spec, for the worker's fair share.
"""

from __future__ import annotations

import builtins
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import JobRow, utcnow
from almanac.core.errors import InputError, NotFoundError
from almanac.server.jobs.fair_share import OPEN_OWNER
from almanac.server.jobs.job_view import FINAL_STATES, JobView

__all__ = ["FINAL_STATES", "ClaimedJob", "JobStore", "JobView"]

log = logging.getLogger(__name__)

_FAIR_WINDOW = 1000  # queued jobs the fair pick looks at (the oldest ones)


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

    def active(self, kind: str, collection: str) -> bool:
        """True when a job of `kind` on `collection` is queued or running."""
        query = select(JobRow.id).where(
            JobRow.kind == kind,
            JobRow.state.in_(("queued", "running")),
            JobRow.spec["collection"].as_string() == collection,
        )
        with self.catalog.transaction() as s:
            return s.scalar(query.limit(1)) is not None

    def spec_of(self, job_id: str) -> tuple[str, dict[str, Any]]:
        """(kind, spec) of a job, or NotFoundError."""
        with self.catalog.transaction() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job {job_id!r}; GET /v1/jobs lists the jobs")
            return row.kind, dict(row.spec)

    def list(self, limit: int = 50, offset: int = 0, collection: str | None = None) -> list[JobView]:
        """Jobs, newest first; only `collection`'s when given (filtered before the page is cut)."""
        query = select(JobRow)
        if collection is not None:
            query = query.where(JobRow.spec["collection"].as_string() == collection)
        query = query.order_by(JobRow.created_at.desc(), JobRow.id).offset(offset).limit(limit)
        with self.catalog.transaction() as s:
            return [JobView.of(row) for row in s.scalars(query)]

    def claim_next(
        self, pick: Callable[[Sequence[tuple[str, str]]], str | None] | None = None
    ) -> ClaimedJob | None:
        """Mark a queued job running and return it: the oldest, or the one `pick` chooses from the oldest
        (job id, owner) pairs; None when none is queued."""
        with self.catalog.transaction() as s:
            query = select(JobRow.id, _owner()).where(JobRow.state == "queued")
            queued = list(
                s.execute(query.order_by(JobRow.created_at, JobRow.id).limit(_FAIR_WINDOW)).tuples()
            )
            chosen = (pick(queued) if pick else None) or (queued[0][0] if queued else None)
            if chosen is None:
                return None
            # The state guard makes the claim atomic even if another process looks at the same row.
            claimed = cast(  # an UPDATE returns a CursorResult; Session.execute is typed as Result
                CursorResult[Any],
                s.execute(
                    update(JobRow)
                    .where(JobRow.id == chosen, JobRow.state == "queued")
                    .values(state="running", updated_at=utcnow())
                ),
            )
            row = s.get(JobRow, chosen)
            if claimed.rowcount != 1 or row is None:
                return None
            return ClaimedJob(row.id, row.kind, dict(row.spec))

    def others_queued(self, owner: str) -> bool:
        """True when an owner other than `owner` has a job queued."""
        query = select(JobRow.id).where(JobRow.state == "queued", _owner() != owner).limit(1)
        with self.catalog.transaction() as s:
            return s.scalar(query) is not None

    def cancel(self, job_id: str) -> JobView:
        """Cancel a queued job at once, or mark a running one ``cancelling`` (the worker stops it between
        items); a finished job is left as it is. Returns the job as it now stands."""
        with self.catalog.transaction() as s:
            for before, after in (("queued", "cancelled"), ("running", "cancelling")):
                s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.state == before)
                    .values(state=after, updated_at=utcnow())
                )
        return self.get(job_id)

    def requeue_running(self) -> builtins.list[str]:  # `list` here is the method above
        """Put jobs left running by a stopped server back in the queue (and end those it was cancelling);
        returns the requeued ids."""
        with self.catalog.transaction() as s:
            s.execute(update(JobRow).where(JobRow.state == "cancelling").values(state="cancelled"))
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


def _owner() -> Any:
    """The SQL expression of a job's owner (jobs queued before owners were recorded count as open)."""
    return func.coalesce(JobRow.spec["owner"].as_string(), OPEN_OWNER)
