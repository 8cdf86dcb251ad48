"""POST /v1/jobs, GET /v1/jobs/{id}, GET /v1/jobs: bulk ingestion of a server-side folder or a database.

A job naming a database by URL needs an admin key bound to no collection (it makes the server connect
somewhere new, and registered sources are shared); by the name of a registered source, a write key.
A key bound to a collection sees and starts only that collection's jobs (another collection's job is a
404, as an unknown id) and names only sources its collection holds rows of.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from almanac.core.errors import ForbiddenError, NotFoundError
from almanac.server.jobs.store import JobView
from almanac.server.keys.principal import Principal
from almanac.server.routes.auth import ReadKey, WriteKey
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.job_schemas import JobOut, JobsResponse
from almanac.server.routes.params import Offset
from almanac.server.routes.schemas import error_responses
from almanac.server.services import Services

router = APIRouter(prefix="/v1", tags=["jobs"], responses=error_responses(401, 403, 422, 429))

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class JobCreate(BaseModel):
    """A folder job {kind, path, collection} or a database job {kind, source | url, tables, collection}."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "folder", "path": "/srv/docs/handbook", "collection": "handbook"},
                {"kind": "database", "source": "shop", "tables": ["bikes"], "collection": "shop"},
            ]
        },
    )

    kind: Literal["folder", "database"]
    collection: str | None = Field(None, min_length=1, max_length=128)
    path: str | None = Field(None, min_length=1, max_length=4096)
    source: str | None = Field(None, min_length=1, max_length=128)
    url: str | None = Field(None, min_length=1, max_length=2048)
    name: str | None = Field(None, min_length=1, max_length=128)
    tables: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(None, max_length=100)
    engine: Literal["local", "ray"] = Field(
        "local",
        description="where files or rows are parsed, chunked and embedded: 'local' (the server) or 'ray' "
        "(a Ray Data pipeline on ALMANAC_INGEST__RAY_ADDRESS, else a local Ray; needs the ray extra); the "
        "server commits either way",
    )


@router.post("/jobs", status_code=202, response_model=JobOut, responses=error_responses(400, 413))
async def create_job(
    body: JobCreate,
    principal: WriteKey,
    services: ServicesDep,
    response: Response,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Queue a job; a retried POST with the same Idempotency-Key returns the same job."""
    if body.url is not None and (principal.bound or not principal.allows("admin")):
        raise ForbiddenError(  # registered sources are shared: re-pointing one would reach other tenants
            "a job that gives a database URL needs an admin key bound to no collection; "
            "or name a registered source with `source` (sources are registered by `almanac ingest-db`)"
        )
    collection = principal.resolve_collection(body.collection, services.settings.default_collection)
    visible = partial(services.catalog.holds_rows, collection) if principal.bound else None
    request = body.model_dump(exclude_none=True) | {"collection": collection}
    job = await run_in_threadpool(partial(services.jobs.submit, owner=principal.owner), request, key, visible)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.as_json()


JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404))
async def get_job(job_id: JobId, principal: ReadKey, services: ServicesDep) -> dict[str, Any]:
    """The job's state, progress (with chunks/s and ETA), per-item errors and (when done) its report."""
    return (await _visible_job(job_id, principal, services)).as_json()


@router.delete("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404))
async def cancel_job(job_id: JobId, principal: WriteKey, services: ServicesDep) -> dict[str, Any]:
    """Cancel a job: a queued one at once; a running one stops between files (state `cancelling`, then
    `cancelled`). What it committed before stays (delete those documents to remove it); a finished job is
    returned unchanged. Uploaded files no document came of are removed."""
    await _visible_job(job_id, principal, services)
    return (await run_in_threadpool(services.jobs.cancel, job_id)).as_json()


async def _visible_job(job_id: str, principal: Principal, services: Services) -> JobView:
    job = await run_in_threadpool(services.jobs.get, job_id)
    if principal.bound and job.collection != principal.collection:
        raise NotFoundError(f"no job {job_id!r}; GET /v1/jobs lists the jobs")  # as for an unknown id
    return job


@router.get("/jobs", response_model=JobsResponse)
async def list_jobs(
    principal: ReadKey,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Jobs, newest first (for a key bound to a collection: only that collection's)."""
    jobs = await run_in_threadpool(services.jobs.list, limit, offset, principal.collection)
    return {"jobs": [j.as_json() for j in jobs], "offset": offset, "limit": limit}
