"""Writes staged inside a catalog transaction: the indexer applies a batch of document changes with these,
then records the index version that covers them, and commits once (DESIGN.md, Invariants)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from almanac.core.catalog_schema import ChunkRow, DocumentRow, utcnow
from almanac.core.types import ChunkDraft, SourceKind


@dataclass(slots=True)
class DocumentUpsert:
    """A new or changed document with its chunks; `fields` are a row's column values as text
    (core.search_filter.row_fields), None for files."""

    source: str
    kind: SourceKind
    title: str
    content_hash: str
    mtime: float
    size: int
    chunks: list[ChunkDraft]
    fields: dict[str, str] | None = None


def stage_upsert(
    s: Session, collection_id: int, doc: DocumentUpsert, vectors: np.ndarray
) -> tuple[list[int], list[int]]:
    """Replace a document's chunks (row i of `vectors` is chunk i); returns (new ids, removed ids)."""
    new_ids, removed = stage_upserts(s, collection_id, [doc], [vectors])
    return new_ids[0], removed


def _batches(values: Sequence[int] | Sequence[str], size: int = 500) -> list[list[Any]]:
    return [list(values[start : start + size]) for start in range(0, len(values), size)]


def stage_upserts(
    s: Session, collection_id: int, docs: Sequence[DocumentUpsert], vectors: Sequence[np.ndarray]
) -> tuple[list[list[int]], list[int]]:
    """Replace many documents' chunks with a few bulk statements (a batch of table rows is thousands of
    documents); returns (new chunk ids per document, removed chunk ids). Sources must be distinct."""
    if len({doc.source for doc in docs}) != len(docs):
        raise ValueError("a batch names one source twice; stage them in separate batches")
    existing: dict[str, int] = {}
    for part in _batches([doc.source for doc in docs]):
        query = select(DocumentRow.source, DocumentRow.id).where(
            DocumentRow.collection_id == collection_id, DocumentRow.source.in_(part)
        )
        existing.update(s.execute(query).tuples().all())
    removed: list[int] = []
    for part in _batches(list(existing.values())):
        removed.extend(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(part))))
        s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(part)))
    now = utcnow()
    values = [
        {
            "title": d.title,
            "content_hash": d.content_hash,
            "mtime": d.mtime,
            "size": d.size,
            "fields": d.fields,
        }
        | {"updated_at": now}
        for d in docs
    ]
    changed = [
        {"id": existing[d.source]} | v for d, v in zip(docs, values, strict=True) if d.source in existing
    ]
    if changed:
        s.execute(update(DocumentRow), changed)  # bulk update by primary key
    fresh = [
        {"collection_id": collection_id, "source": d.source, "kind": d.kind} | v
        for d, v in zip(docs, values, strict=True)
        if d.source not in existing
    ]
    if fresh:
        inserted = s.scalars(
            insert(DocumentRow).returning(DocumentRow.id, sort_by_parameter_order=True), fresh
        )
        new_sources = [d.source for d in docs if d.source not in existing]
        existing.update(zip(new_sources, inserted, strict=True))
    return _insert_chunks(s, collection_id, docs, vectors, existing), removed


def _insert_chunks(
    s: Session,
    collection_id: int,
    docs: Sequence[DocumentUpsert],
    vectors: Sequence[np.ndarray],
    doc_ids: dict[str, int],
) -> list[list[int]]:
    rows = [
        {
            "document_id": doc_ids[doc.source],
            "collection_id": collection_id,
            "ordinal": chunk.ordinal,
            "text": chunk.text,
            "locator": chunk.locator,
            "content_hash": chunk.content_hash,
            "vector": vecs[i].tobytes(),
        }
        for doc, vecs in zip(docs, vectors, strict=True)
        for i, chunk in enumerate(doc.chunks)
    ]
    ids = (
        list(s.scalars(insert(ChunkRow).returning(ChunkRow.id, sort_by_parameter_order=True), rows))
        if rows
        else []
    )
    per_doc, start = [], 0
    for doc in docs:
        per_doc.append(ids[start : start + len(doc.chunks)])
        start += len(doc.chunks)
    return per_doc


def stage_delete(s: Session, collection_id: int, source: str) -> list[int]:
    """Delete a document and its chunks; returns the removed chunk ids."""
    doc_id = s.scalar(
        select(DocumentRow.id).where(DocumentRow.collection_id == collection_id, DocumentRow.source == source)
    )
    if doc_id is None:
        return []
    removed = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc_id)))
    s.execute(delete(ChunkRow).where(ChunkRow.document_id == doc_id))
    s.execute(delete(DocumentRow).where(DocumentRow.id == doc_id))
    return removed


def stage_touch(s: Session, doc_id: int, mtime: float, size: int) -> None:
    """Record a new mtime for content that did not change (so the next run skips hashing it)."""
    row = s.get(DocumentRow, doc_id)
    if row is not None:
        row.mtime, row.size = mtime, size
