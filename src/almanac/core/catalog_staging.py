"""Writes staged inside a catalog transaction: the indexer applies a batch of document changes with these,
then records the index version that covers them, and commits once (DESIGN.md, Invariants)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
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
    row = s.scalar(
        select(DocumentRow).where(
            DocumentRow.collection_id == collection_id, DocumentRow.source == doc.source
        )
    )
    removed: list[int] = []
    if row is None:
        row = DocumentRow(collection_id=collection_id, source=doc.source, kind=doc.kind)
        s.add(row)
    else:
        removed = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == row.id)))
        s.execute(delete(ChunkRow).where(ChunkRow.document_id == row.id))
    row.title, row.content_hash, row.mtime, row.size = doc.title, doc.content_hash, doc.mtime, doc.size
    row.fields = doc.fields
    row.updated_at = utcnow()
    s.flush()
    chunks = [
        ChunkRow(
            document_id=row.id,
            collection_id=collection_id,
            ordinal=c.ordinal,
            text=c.text,
            locator=c.locator,
            content_hash=c.content_hash,
            vector=vectors[i].tobytes(),
        )
        for i, c in enumerate(doc.chunks)
    ]
    s.add_all(chunks)
    s.flush()
    return [c.id for c in chunks], removed


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
