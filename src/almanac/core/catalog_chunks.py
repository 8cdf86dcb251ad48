"""The catalog's reads of chunks: by id, by collection, with their vectors (a base of `Catalog`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from almanac.core.catalog_schema import ChunkRow, CollectionRow, DocumentRow
from almanac.core.types import ChunkRecord

# id, document_id, collection name, source, locator, text, kind, ordinal: the fields of a ChunkRecord
_RecordSelect = Select[int, int, str, str, str, str, str, int]


class ChunkReads:
    """Chunk queries over the catalog's sessions."""

    _sessions: sessionmaker[Session]

    def stored_vectors(self, collection_id: int, hashes: Iterable[str]) -> dict[str, bytes]:
        """content hash -> stored vector bytes, to skip re-embedding text the collection already has."""
        wanted = list(set(hashes))
        found: dict[str, bytes] = {}
        with self._sessions() as s:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                query = select(ChunkRow.content_hash, ChunkRow.vector).where(
                    ChunkRow.collection_id == collection_id, ChunkRow.content_hash.in_(part)
                )
                found.update(dict(s.execute(query).tuples().all()))
        return found

    def chunk_payloads(
        self, collection_id: int, first_id: int | None = None, last_id: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, lexical texts) of a collection's chunks in id order, optionally only ids within
        [first_id, last_id]: what building a segment reads. The lexical text is the locator and the text."""
        query = select(ChunkRow.id, ChunkRow.vector, ChunkRow.locator, ChunkRow.text).where(
            ChunkRow.collection_id == collection_id
        )
        if first_id is not None and last_id is not None:
            query = query.where(ChunkRow.id.between(first_id, last_id))
        ids: list[int] = []
        vectors: list[bytes] = []
        texts: list[str] = []
        with self._sessions() as s:
            for row in s.execute(query.order_by(ChunkRow.id).execution_options(yield_per=10_000)):
                ids.append(row.id)
                vectors.append(row.vector)
                texts.append(f"{row.locator}\n{row.text}")
        dimension = len(vectors[0]) // 4 if vectors else 0
        matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(ids), dimension)
        return np.asarray(ids, dtype=np.int64), matrix, texts

    def chunk_count(self, collection_id: int) -> int:
        """Committed chunks of a collection."""
        with self._sessions() as s:
            query = select(func.count()).select_from(ChunkRow).where(ChunkRow.collection_id == collection_id)
            return s.scalar(query) or 0

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        """All committed chunk ids of a collection, sorted."""
        with self._sessions() as s:
            ids = s.scalars(
                select(ChunkRow.id).where(ChunkRow.collection_id == collection_id).order_by(ChunkRow.id)
            )
            return np.fromiter(ids, dtype=np.int64)

    def _records(self, query: _RecordSelect) -> Iterator[ChunkRecord]:
        with self._sessions() as s:
            for row in s.execute(query.execution_options(yield_per=2000)):
                yield ChunkRecord(
                    row.id,
                    row.document_id,
                    row.name,
                    row.source,
                    row.locator,
                    row.text,
                    row.kind,
                    row.ordinal,
                )

    def _record_query(self) -> _RecordSelect:
        return (
            select(
                ChunkRow.id,
                ChunkRow.document_id,
                CollectionRow.name,
                DocumentRow.source,
                ChunkRow.locator,
                ChunkRow.text,
                DocumentRow.kind,
                ChunkRow.ordinal,
            )
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .join(CollectionRow, CollectionRow.id == ChunkRow.collection_id)
        )

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """id -> ChunkRecord for the ids that still exist."""
        found: dict[int, ChunkRecord] = {}
        unique = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(unique), 500):
            query = self._record_query().where(ChunkRow.id.in_(unique[start : start + 500]))
            found.update((r.id, r) for r in self._records(query))
        return found
