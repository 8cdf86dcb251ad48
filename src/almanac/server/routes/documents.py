"""POST /v1/documents (multipart upload), GET /v1/documents, DELETE /v1/documents/{id}, GET /v1/collections.

Uploads and deletes run as jobs of the one writer (see server/document_library.py). The request waits up to
`wait` seconds (default 30): 201 (upload) or 200 (delete) when the job is done, else 202 with the job to
poll at GET /v1/jobs/{id}. A key bound to a collection reaches only its own: another collection is the same
403 as an unknown one, and another collection's document id is a 404 like an unknown id.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from almanac.core.audit_log import audit
from almanac.server.documents.library import DocumentLibrary
from almanac.server.jobs.store import JobView
from almanac.server.routes.auth import ReadKey, WriteKey
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.job_schemas import (
    CollectionOut,
    CollectionsResponse,
    DocumentDeleteResponse,
    DocumentJobResponse,
    DocumentOut,
    DocumentsResponse,
)
from almanac.server.routes.params import DocumentId, Offset
from almanac.server.routes.schemas import error_responses

router = APIRouter(prefix="/v1", tags=["documents"], responses=error_responses(401, 403, 422, 429))

Wait = Annotated[float, Query(ge=0, le=300, description="seconds to wait for the ingest job")]


def _library(services: ServicesDep) -> DocumentLibrary:
    return DocumentLibrary(services.settings, services.catalog, services.jobs)


def _pending(model: type[BaseModel], doing: str) -> dict[int | str, dict[str, Any]]:
    return {202: {"model": model, "description": f"Still {doing}: poll the job at the Location header"}}


def _job_body(job: JobView) -> dict[str, Any]:
    report = job.report or {}
    return {"job": job.as_json(), "documents": report.get("documents", []), "errors": job.errors}


@router.post(
    "/documents",
    status_code=201,
    response_model=DocumentJobResponse,
    responses=_pending(DocumentJobResponse, "ingesting") | error_responses(400, 413),
)
async def upload_documents(
    file: Annotated[list[UploadFile], File(min_length=1, description="one or more files (repeat the field)")],
    principal: WriteKey,
    services: ServicesDep,
    response: Response,
    collection: Annotated[str | None, Form(max_length=128)] = None,
    wait: Wait = 30.0,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> dict[str, Any]:
    """Save and ingest uploaded files; the response lists the new document ids."""
    name = principal.resolve_collection(collection, services.settings.default_collection)
    files = [(f.filename or "", f.file) for f in file]
    upload = partial(_library(services).upload, owner=principal.owner)
    job = await run_in_threadpool(upload, name, files, idempotency_key)
    job = await services.jobs.wait_async(job.id, wait)
    if not job.done:
        response.status_code = 202
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _job_body(job)


@router.get("/collections", response_model=CollectionsResponse)
async def list_collections(principal: ReadKey, services: ServicesDep) -> CollectionsResponse:
    """The collections the key can see (a bound key: its own), with document and chunk counts."""
    catalog = services.catalog
    names = await run_in_threadpool(catalog.collection_names)
    stats = [await run_in_threadpool(catalog.stats, n) for n in names if principal.collection in (None, n)]
    return CollectionsResponse(
        default=principal.collection_or(services.settings.default_collection),
        collections=[CollectionOut(name=s.name, documents=s.documents, chunks=s.chunks) for s in stats],
    )


@router.get("/documents", response_model=DocumentsResponse, responses=error_responses(404))
async def list_documents(
    principal: ReadKey,
    services: ServicesDep,
    collection: Annotated[str | None, Query(max_length=128)] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DocumentsResponse:
    """A page of a collection's documents: id, source, kind, title, chunks, updated_at."""
    name = principal.resolve_collection(collection, services.settings.default_collection)
    page = await run_in_threadpool(_library(services).list, name, offset, limit)
    documents = [
        DocumentOut(
            id=d.id,
            source=d.source,
            kind=d.kind,
            title=d.title,
            chunks=d.chunks,
            updated_at=d.updated_at.isoformat(),
        )
        for d in page.documents
    ]
    next_offset = offset + len(documents) if offset + len(documents) < page.total else None
    return DocumentsResponse(
        collection=name,
        documents=documents,
        total=page.total,
        offset=offset,
        limit=limit,
        next_offset=next_offset,
    )


@router.delete(
    "/documents/{document_id}",
    response_model=DocumentDeleteResponse,
    responses=_pending(DocumentDeleteResponse, "deleting") | error_responses(404),
)
async def delete_document(
    document_id: DocumentId, principal: WriteKey, services: ServicesDep, response: Response, wait: Wait = 30.0
) -> dict[str, Any]:
    """Remove a document (through the indexer pipeline, under the writer lock)."""
    library = _library(services)
    # A bound key gets 404 for another collection's document: ids are sequential, so a 403 would enumerate.
    await run_in_threadpool(library.locate, document_id, principal.collection)
    job = await run_in_threadpool(library.delete, document_id)
    audit("document_deleted", principal.key_prefix or "anonymous", document=document_id, job=job.id)
    job = await services.jobs.wait_async(job.id, wait)
    if not job.done:
        response.status_code = 202
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return {"deleted": document_id, **_job_body(job)}
