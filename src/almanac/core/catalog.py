"""The catalog: SQLAlchemy access to collections, documents, chunks (with vectors) and index versions.

The indexer stages a batch of document changes and records the new index version inside one transaction
(`Catalog.transaction`): the chunks and the version that indexes them are both committed, or neither.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from almanac.core.catalog_schema import (
    Base,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    IndexVersionRow,
    SourceRow,
    utcnow,
)
from almanac.core.errors import ConfigError, IndexMismatchError, NotFoundError
from almanac.core.types import ChunkDraft, ChunkRecord, SourceKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DocState:
    """What the catalog knows of a stored document, enough to tell whether it changed."""

    id: int
    content_hash: str
    mtime: float
    size: int


@dataclass(slots=True)
class DocumentUpsert:
    """A new or changed document with its chunks and their vectors (row i of `vectors` is chunk i)."""

    source: str
    kind: SourceKind
    title: str
    content_hash: str
    mtime: float
    size: int
    chunks: list[ChunkDraft]
    vectors: np.ndarray


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """Counts for `almanac status`."""

    name: str
    embedding_model: str
    dimension: int
    index_kind: str
    documents: int
    chunks: int
    version: int


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # WAL lets readers search while the single writer commits; FULL sync makes commits durable.
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for the catalog URL (SQLite pragmas applied on every connection)."""
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL or missing driver
        raise ConfigError(f"cannot use catalog URL ({exc}); check ALMANAC_CATALOG__URL") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Catalog:
    """Typed operations over the catalog database."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise ConfigError(
                f"cannot open the catalog database: {exc.orig}; check ALMANAC_CATALOG__URL"
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    # -- collections -----------------------------------------------------------------------------
    def collection(self, name: str) -> CollectionRow | None:
        """The collection row, or None."""
        with self._sessions() as s:
            return s.scalar(select(CollectionRow).where(CollectionRow.name == name))

    def require_collection(self, name: str) -> CollectionRow:
        """The collection row, or NotFoundError that says how to create it."""
        row = self.collection(name)
        if row is None:
            raise NotFoundError(
                f"no collection {name!r}; run `almanac ingest PATH --collection {name}` first"
            )
        return row

    def ensure_collection(self, name: str, model: str, dimension: int, kind: str) -> CollectionRow:
        """Create the collection, or check that it was built with the same model and dimension."""
        with self.transaction() as s:
            row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                row = CollectionRow(name=name, embedding_model=model, dimension=dimension, index_kind=kind)
                s.add(row)
                s.flush()
            elif (row.embedding_model, row.dimension) != (model, dimension):
                raise IndexMismatchError(
                    f"collection {name!r} was indexed with {row.embedding_model} (dimension {row.dimension}) "
                    f"but the configured model is {model} (dimension {dimension}); set "
                    f"ALMANAC_EMBEDDING__MODEL={row.embedding_model} or ingest into a new collection"
                )
            return row

    def collection_names(self) -> list[str]:
        """All collection names, sorted."""
        with self._sessions() as s:
            return list(s.scalars(select(CollectionRow.name).order_by(CollectionRow.name)))

    def stats(self, name: str) -> CollectionStats:
        """Document and chunk counts and the published version of one collection."""
        row = self.require_collection(name)
        with self._sessions() as s:
            docs = s.scalar(select(func.count()).where(DocumentRow.collection_id == row.id)) or 0
            chunks = s.scalar(select(func.count()).where(ChunkRow.collection_id == row.id)) or 0
        latest = self.latest_version(row.id)
        return CollectionStats(
            row.name,
            row.embedding_model,
            row.dimension,
            row.index_kind,
            docs,
            chunks,
            latest.version if latest else 0,
        )

    # -- documents and chunks --------------------------------------------------------------------
    def document_states(self, collection_id: int, prefix: str | None = None) -> dict[str, DocState]:
        """source -> DocState of a collection's documents (optionally only sources starting with prefix)."""
        query = select(
            DocumentRow.source, DocumentRow.id, DocumentRow.content_hash, DocumentRow.mtime, DocumentRow.size
        ).where(DocumentRow.collection_id == collection_id)
        if prefix is not None:
            query = query.where(DocumentRow.source.startswith(prefix, autoescape=True))
        with self._sessions() as s:
            return {src: DocState(i, h, m, z) for src, i, h, m, z in s.execute(query)}

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

    def iter_vectors(
        self, collection_id: int, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, in id order: what a rebuild of the index reads."""
        query = select(ChunkRow.id, ChunkRow.vector).where(ChunkRow.collection_id == collection_id)
        with self._sessions() as s:
            rows = s.execute(query.order_by(ChunkRow.id).execution_options(yield_per=batch))
            for part in rows.partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in part])
                yield ids, vectors

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        """All committed chunk ids of a collection, sorted."""
        with self._sessions() as s:
            ids = s.scalars(
                select(ChunkRow.id).where(ChunkRow.collection_id == collection_id).order_by(ChunkRow.id)
            )
            return np.fromiter(ids, dtype=np.int64)

    def _records(self, query) -> Iterator[ChunkRecord]:
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

    def _record_query(self):
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

    def iter_chunks(self, collection: str) -> Iterator[ChunkRecord]:
        """Every committed chunk of a collection, in id order."""
        row = self.require_collection(collection)
        query = self._record_query().where(ChunkRow.collection_id == row.id).order_by(ChunkRow.id)
        yield from self._records(query)

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """id -> ChunkRecord for the ids that still exist."""
        found: dict[int, ChunkRecord] = {}
        unique = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(unique), 500):
            query = self._record_query().where(ChunkRow.id.in_(unique[start : start + 500]))
            found.update((r.id, r) for r in self._records(query))
        return found

    # -- staged writes (inside Catalog.transaction) ----------------------------------------------
    def stage_upsert(
        self, s: Session, collection_id: int, doc: DocumentUpsert
    ) -> tuple[list[int], list[int]]:
        """Replace a document's chunks; returns (new chunk ids, removed chunk ids)."""
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
                vector=doc.vectors[i].tobytes(),
            )
            for i, c in enumerate(doc.chunks)
        ]
        s.add_all(chunks)
        s.flush()
        return [c.id for c in chunks], removed

    def stage_delete(self, s: Session, collection_id: int, source: str) -> list[int]:
        """Delete a document and its chunks; returns the removed chunk ids."""
        doc_id = s.scalar(
            select(DocumentRow.id).where(
                DocumentRow.collection_id == collection_id, DocumentRow.source == source
            )
        )
        if doc_id is None:
            return []
        removed = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc_id)))
        s.execute(delete(ChunkRow).where(ChunkRow.document_id == doc_id))
        s.execute(delete(DocumentRow).where(DocumentRow.id == doc_id))
        return removed

    def stage_touch(self, s: Session, doc_id: int, mtime: float, size: int) -> None:
        """Record a new mtime for content that did not change (so the next run skips hashing it)."""
        row = s.get(DocumentRow, doc_id)
        if row is not None:
            row.mtime, row.size = mtime, size

    # -- index versions ----------------------------------------------------------------------------
    def latest_version(self, collection_id: int) -> IndexVersionRow | None:
        """The newest published index version of a collection."""
        with self._sessions() as s:
            return s.scalar(
                select(IndexVersionRow)
                .where(IndexVersionRow.collection_id == collection_id)
                .order_by(IndexVersionRow.version.desc())
                .limit(1)
            )

    def stage_version(self, s: Session, version: IndexVersionRow) -> None:
        """Record a published index file in the current transaction."""
        s.add(version)

    # -- source databases ------------------------------------------------------------------------
    def register_source(self, name: str, url: str) -> None:
        """Remember a source database's URL under a name (used to re-read rows live)."""
        with self.transaction() as s:
            row = s.scalar(select(SourceRow).where(SourceRow.name == name))
            if row is None:
                s.add(SourceRow(name=name, url=url))
            else:
                row.url = url

    def source_urls(self) -> dict[str, str]:
        """name -> URL of every registered source database."""
        with self._sessions() as s:
            return dict(s.execute(select(SourceRow.name, SourceRow.url)).tuples().all())
