"""Response bodies of the ingestion side: jobs (/v1/jobs) and the documents they upload or delete.

A job body is server.jobs.store.JobView.as_json; see routes/schemas.py for why every key is declared.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from almanac.server.routes.schemas import ResponseModel


class JobProgressOut(ResponseModel):
    """Counters of a job (they restart from zero when an interrupted job runs again)."""

    items: int = Field(description="files or rows read")
    chunks: int = Field(description="chunks committed")
    total: int | None = Field(description="files or rows to read, when known")
    chunks_per_s: float | None = Field(None, description="chunks committed per second so far")
    eta_s: float | None = Field(None, description="seconds left, estimated from the items done (total known)")


class JobErrorOut(ResponseModel):
    """A file, row source or job that failed, and why."""

    source: str
    reason: str


class JobOut(ResponseModel):
    """A job's state: queued -> running -> succeeded | failed, or cancelled (through cancelling)."""

    id: str = Field(examples=["job_1a2b3c4d5e6f7a8b"])
    kind: Literal["folder", "database", "upload", "delete", "repair"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelling", "cancelled"]
    collection: str | None
    progress: JobProgressOut
    errors: list[JobErrorOut]
    report: dict[str, Any] | None = Field(
        description="the indexer's report once done: added, updated, unchanged, removed, failed, ... chunks"
    )
    message: str | None = Field(examples=["waiting for the writer lock"])
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")


class JobsResponse(ResponseModel):
    """GET /v1/jobs: a page of jobs, newest first."""

    jobs: list[JobOut]
    offset: int
    limit: int


class DocumentOut(ResponseModel):
    """A document of a collection."""

    id: int
    source: str
    kind: str = Field(examples=["document", "row"])
    title: str
    chunks: int
    updated_at: str = Field(description="ISO 8601")


class DocumentsResponse(ResponseModel):
    """GET /v1/documents: a page of a collection's documents."""

    collection: str
    documents: list[DocumentOut]
    total: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="offset of the next page; null on the last page")


class CollectionOut(ResponseModel):
    """A collection and its counts."""

    name: str
    documents: int
    chunks: int


class CollectionsResponse(ResponseModel):
    """GET /v1/collections: the collections the key can see, and the one used when a call names none."""

    default: str = Field(description="the collection a call that names none uses (it may not exist yet)")
    collections: list[CollectionOut]


class DocumentRef(ResponseModel):
    """An uploaded document: its id and where it was saved."""

    id: int
    source: str


class DocumentJobResponse(ResponseModel):
    """POST /v1/documents: the upload job (201 done, 202 still running) and the new document ids."""

    job: JobOut
    documents: list[DocumentRef]
    errors: list[JobErrorOut]


class DocumentDeleteResponse(ResponseModel):
    """DELETE /v1/documents/{id}: the removed id and the delete job (200 done, 202 still running)."""

    deleted: int
    job: JobOut
    documents: list[DocumentRef]
    errors: list[JobErrorOut]
