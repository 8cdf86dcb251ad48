"""Commits batches of document changes: embed what is new, stage it, publish the index, all or nothing.

One flush = one catalog transaction that holds the chunk rows AND the record of the index version that
indexes them: a new segment with the flush's chunks and the ids it deleted (DESIGN.md, Invariants). The
segment file is written and renamed into place before the commit; a writer killed in between leaves an
unrecorded file that readers never open and the next writer overwrites.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow
from almanac.core.catalog_staging import DocumentUpsert, stage_delete, stage_touch, stage_upserts
from almanac.core.errors import IndexMismatchError
from almanac.core.index_store import IndexStore
from almanac.core.ports import Embedder
from almanac.core.types import ChunkDraft
from almanac.indexer.report import IngestReport, Progress
from almanac.indexer.segment_writer import SegmentWriter

log = logging.getLogger(__name__)


def lexical_text(chunk: ChunkDraft) -> str:
    """What BM25 indexes: the locator and the text (as `Catalog.chunk_payloads` gives it back)."""
    return f"{chunk.locator}\n{chunk.text}"


def embed_text(chunk: ChunkDraft) -> str:
    """What the embedder sees: the locator (heading path, page, row key) gives the chunk its context."""
    return f"{chunk.locator}\n{chunk.text}" if chunk.locator else chunk.text


@dataclass(slots=True)
class PendingDocument(DocumentUpsert):
    """A new or changed document, chunked, waiting for vectors; `is_new` tells added from updated.

    `vectors` (row i for chunk i), when given, were computed elsewhere (Ray workers) by the collection's
    embedder; the writer then embeds nothing for this document.
    """

    is_new: bool = True
    vectors: np.ndarray | None = None


@dataclass
class _Batch:
    docs: list[PendingDocument] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    touches: list[tuple[int, float, int]] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
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
        self.segments = SegmentWriter(catalog, store, collection, batch_chunks)
        if reason := self.segments.repair_reason():
            self.segments.repair(reason)
        self.report.version = self.segments.version

    def close(self) -> None:
        """Stop background merges (see SegmentWriter.close); call after the last flush."""
        self.segments.close()

    @property
    def version(self) -> int:
        """The latest published index version of the collection."""
        return self.segments.version

    def add(self, doc: PendingDocument) -> None:
        """Queue a new or changed document."""
        if doc.is_new:
            self.report.added += 1
        else:
            self.report.updated += 1
        if doc.source in self._batch.sources:
            self.flush()  # a source appears once per transaction
        self._batch.docs.append(doc)
        self._batch.sources.add(doc.source)
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
        new = {c.content_hash for d in docs for c in d.chunks if c.content_hash not in known}
        for doc in docs:  # precomputed vectors count as embedded, as they would have been here
            if doc.vectors is not None:
                pairs = zip(doc.chunks, self._checked(doc), strict=True)
                known.update((c.content_hash, v.tobytes()) for c, v in pairs if c.content_hash not in known)
        todo = {c.content_hash: c for d in docs for c in d.chunks if c.content_hash not in known}
        if todo:
            fresh = self.embedder.embed([embed_text(c) for c in todo.values()])
            known.update((h, v.tobytes()) for h, v in zip(todo, fresh, strict=True))
        self.report.chunks_embedded += len(new)
        self.report.chunks_reused += len(hashes) - len(new)
        dim = self.collection.dimension
        empty = np.zeros((0, dim), dtype=np.float32)
        return [
            np.stack([np.frombuffer(known[c.content_hash], dtype=np.float32) for c in d.chunks])
            if d.chunks
            else empty
            for d in docs
        ]

    def _checked(self, doc: PendingDocument) -> np.ndarray:
        """A document's precomputed vectors as float32, refused unless one per chunk of this dimension."""
        vectors = np.ascontiguousarray(doc.vectors, dtype=np.float32)
        if vectors.shape != (len(doc.chunks), self.collection.dimension):
            raise IndexMismatchError(
                f"{doc.source}: vectors of shape {vectors.shape} for {len(doc.chunks)} chunks of collection "
                f"{self.collection.name!r} (dimension {self.collection.dimension}); the workers must run "
                f"the collection's model, {self.collection.embedding_model}"
            )
        return vectors

    def flush(self) -> None:
        """Commit everything queued; publishes a new index version when chunks changed."""
        batch, self._batch = self._batch, _Batch()
        if not (batch.docs or batch.deletes or batch.touches):
            return
        vectors = self._vectors(batch.docs)
        new_ids: list[list[int]] = []
        removed: list[int] = []
        manifest = None
        with self.segments.publishing():  # a merge never takes this version's number
            with self.catalog.transaction() as s:
                new_ids, removed = stage_upserts(s, self.collection.id, batch.docs, vectors)
                for source in batch.deletes:
                    removed.extend(stage_delete(s, self.collection.id, source))
                for doc_id, mtime, size in batch.touches:
                    stage_touch(s, doc_id, mtime, size)
                if batch.docs or batch.deletes:
                    ids = np.fromiter((i for part in new_ids for i in part), dtype=np.int64)
                    texts = [lexical_text(c) for d in batch.docs for c in d.chunks]
                    stacked = np.concatenate(vectors) if vectors else np.empty((0, self.collection.dimension))
                    manifest = self.segments.stage_commit(
                        s, ids, stacked, texts, np.asarray(removed, np.int64)
                    )
            if manifest is not None:
                self.segments.committed(manifest)
        self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        committed = sum(len(d.chunks) for d in batch.docs)
        self.report.chunks_committed += committed
        self.report.version = self.segments.version
        self.progress.advance(chunks=committed)
        log.info(
            "event=batch_committed collection=%s version=%d docs=%d chunks=%d deletes=%d",
            self.collection.name,
            self.segments.version,
            len(batch.docs),
            committed,
            len(batch.deletes),
        )
