"""Commits batches of document changes: embed what is new, stage it, publish the index, all or nothing.

One flush = one catalog transaction that holds the chunk rows AND the record of the index file that indexes
them (DESIGN.md, Invariants). The file is written and renamed into place before the commit; a writer killed in
between leaves an unrecorded file that readers never open and the next writer overwrites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow
from almanac.core.catalog_staging import DocumentUpsert, stage_delete, stage_touch, stage_upsert
from almanac.core.index_store import IndexStore
from almanac.core.ports import Embedder
from almanac.core.types import ChunkDraft
from almanac.core.vector_index import FaissIndex
from almanac.indexer.report import IngestReport, Progress

log = logging.getLogger(__name__)


def embed_text(chunk: ChunkDraft) -> str:
    """What the embedder sees: the locator (heading path, page, row key) gives the chunk its context."""
    return f"{chunk.locator}\n{chunk.text}" if chunk.locator else chunk.text


@dataclass(slots=True)
class PendingDocument(DocumentUpsert):
    """A new or changed document, chunked, waiting for vectors; `is_new` tells added from updated."""

    is_new: bool = True


@dataclass
class _Batch:
    docs: list[PendingDocument] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    touches: list[tuple[int, float, int]] = field(default_factory=list)
    chunks: int = 0


class BatchWriter:
    """Accumulates changes for one collection and commits them in batches of about `batch_chunks`."""

    def __init__(
        self,
        catalog: Catalog,
        store: IndexStore,
        embedder: Embedder,
        collection: CollectionRow,
        report: IngestReport,
        progress: Progress,
        batch_chunks: int,
    ) -> None:
        self.catalog, self.store, self.embedder = catalog, store, embedder
        self.collection, self.report, self.progress = collection, report, progress
        self.batch_chunks = batch_chunks
        self._batch = _Batch()
        snapshot = store.load(catalog, collection.name)
        self.index, self.version = snapshot.index, snapshot.version
        if snapshot.rebuilt and len(self.index):
            self._publish_repaired()

    def add(self, doc: PendingDocument) -> None:
        """Queue a new or changed document."""
        if doc.is_new:
            self.report.added += 1
        else:
            self.report.updated += 1
        self._batch.docs.append(doc)
        self._batch.chunks += len(doc.chunks)
        if self._batch.chunks >= self.batch_chunks:
            self.flush()

    def delete(self, source: str) -> None:
        """Queue the removal of a document."""
        self._batch.deletes.append(source)

    def touch(self, doc_id: int, mtime: float, size: int) -> None:
        """Queue a new mtime for unchanged content."""
        self._batch.touches.append((doc_id, mtime, size))

    def _vectors(self, docs: list[PendingDocument]) -> list[np.ndarray]:
        """Vectors per document: stored ones reused by content hash, the rest embedded in one call."""
        hashes = [c.content_hash for d in docs for c in d.chunks]
        known = self.catalog.stored_vectors(self.collection.id, hashes)
        todo = {c.content_hash: c for d in docs for c in d.chunks if c.content_hash not in known}
        if todo:
            fresh = self.embedder.embed([embed_text(c) for c in todo.values()])
            known.update((h, v.tobytes()) for h, v in zip(todo, fresh, strict=True))
        self.report.chunks_embedded += len(todo)
        self.report.chunks_reused += len(hashes) - len(todo)
        dim = self.collection.dimension
        empty = np.zeros((0, dim), dtype=np.float32)
        return [
            np.stack([np.frombuffer(known[c.content_hash], dtype=np.float32) for c in d.chunks])
            if d.chunks
            else empty
            for d in docs
        ]

    def flush(self) -> None:
        """Commit everything queued; publishes a new index version when chunks changed."""
        batch, self._batch = self._batch, _Batch()
        if not (batch.docs or batch.deletes or batch.touches):
            return
        vectors = self._vectors(batch.docs)
        index = self.index.copy()
        changed = False
        with self.catalog.transaction() as s:
            for doc, vecs in zip(batch.docs, vectors, strict=True):
                new_ids, removed = stage_upsert(s, self.collection.id, doc, vecs)
                index.remove(np.asarray(removed, dtype=np.int64))
                if new_ids:
                    index.add(np.asarray(new_ids, dtype=np.int64), vecs)
                changed = True
            for source in batch.deletes:
                removed = stage_delete(s, self.collection.id, source)
                index.remove(np.asarray(removed, dtype=np.int64))
                changed = True
            for doc_id, mtime, size in batch.touches:
                stage_touch(s, doc_id, mtime, size)
            if changed:
                self._stage_publish(s, index)
        self._committed(index if changed else self.index, batch)

    def _stage_publish(self, session: Session, index: FaissIndex) -> None:
        self.store.stage_version(session, self.collection, self.version + 1, index)

    def _committed(self, index: FaissIndex, batch: _Batch) -> None:
        if index is not self.index:
            self.index, self.version = index, self.version + 1
            self.store.prune(self.collection.name, keep={self.version, self.version - 1})
        committed = sum(len(d.chunks) for d in batch.docs)
        self.report.chunks_committed += committed
        self.report.version = self.version
        self.progress.advance(chunks=committed)
        log.info(
            "event=batch_committed collection=%s version=%d docs=%d chunks=%d deletes=%d",
            self.collection.name,
            self.version,
            len(batch.docs),
            committed,
            len(batch.deletes),
        )
        if self.index.needs_rebuild():
            self._publish_repaired()

    def _publish_repaired(self) -> None:
        """Publish an index rebuilt from the catalog (after a mismatch, or to drop HNSW tombstones)."""
        index = self.store.rebuild(self.catalog, self.collection)
        with self.catalog.transaction() as s:
            self._stage_publish(s, index)
        self.index, self.version = index, self.version + 1
        self.store.prune(self.collection.name, keep={self.version, self.version - 1})
        self.report.version = self.version
