"""Checks that a collection's catalog and its published index agree (`almanac check`, the crash test).

A healthy collection has: a recorded latest index file that loads with its checksum and recorded count; the
index's ids equal to the catalog's chunk ids (no phantom vector, no chunk left out); no duplicate document
source and no duplicate chunk position within a document.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import ChunkRow, DocumentRow
from almanac.core.index_store import IndexStore


def check_collection(catalog: Catalog, store: IndexStore, collection: str) -> list[str]:
    """Problems found, as sentences; an empty list means consistent."""
    row = catalog.require_collection(collection)
    problems: list[str] = []
    snapshot = store.load(catalog, collection)
    if snapshot.rebuilt and catalog.latest_version(row.id) is not None:
        problems.append(f"published index v{snapshot.version} does not match the catalog (it was rebuilt)")
    index_ids = np.sort(snapshot.index.ids())
    catalog_ids = catalog.chunk_ids(row.id)
    if not np.array_equal(index_ids, catalog_ids):
        extra = np.setdiff1d(index_ids, catalog_ids).size
        missing = np.setdiff1d(catalog_ids, index_ids).size
        problems.append(
            f"index and catalog disagree: {extra} vectors without a chunk, {missing} chunks unindexed"
        )
    return problems + _catalog_problems(catalog, row.id)


def _catalog_problems(catalog: Catalog, collection_id: int) -> list[str]:
    """Duplicates and orphans inside the catalog itself."""
    with catalog.transaction() as s:
        dup_docs = s.execute(
            select(DocumentRow.source)
            .where(DocumentRow.collection_id == collection_id)
            .group_by(DocumentRow.source)
            .having(func.count() > 1)
        ).all()
        dup_chunks = s.execute(
            select(ChunkRow.document_id, ChunkRow.ordinal)
            .where(ChunkRow.collection_id == collection_id)
            .group_by(ChunkRow.document_id, ChunkRow.ordinal)
            .having(func.count() > 1)
        ).all()
        orphans = s.scalar(
            select(func.count())
            .select_from(ChunkRow)
            .outerjoin(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id, DocumentRow.id.is_(None))
        )
    counts = {
        "duplicate document sources": len(dup_docs),
        "duplicate chunk positions": len(dup_chunks),
        "chunks without a document": orphans or 0,
    }
    return [f"{n} {what}" for what, n in counts.items() if n]
