"""The catalog: SQLAlchemy access to collections, documents, chunks (with vectors) and index versions.

The indexer stages a batch of document changes (core/catalog_staging.py) and records the new index version
inside one transaction (`Catalog.transaction`): the chunks and the version that indexes them are both
committed, or neither.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from almanac.core.catalog_chunks import ChunkReads
from almanac.core.catalog_engine import make_engine, open_error
from almanac.core.catalog_schema import (
    Base,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    IndexVersionRow,
    SourceRow,
)
from almanac.core.catalog_upgrade import add_missing_columns
from almanac.core.errors import IndexMismatchError, NotFoundError
from almanac.core.types import ChunkRecord

# id, document_id, collection name, source, locator, text, kind, ordinal: the fields of a ChunkRecord
_RecordSelect = Select[int, int, str, str, str, str, str, int]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DocState:
    """What the catalog knows of a stored document, enough to tell whether it changed."""

    id: int
    content_hash: str
    mtime: float
    size: int


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


class Catalog(ChunkReads):
    """Typed operations over the catalog database."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        try:
            add_missing_columns(self.engine)  # a catalog written by an earlier release
            Base.metadata.create_all(self.engine)
        except DatabaseError as exc:  # OperationalError too: unreadable, not SQLite, truncated
            raise open_error(url, exc.orig) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def ping(self) -> None:
        """Run ``SELECT 1``: raises SQLAlchemy's OperationalError when the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(select(1))

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

    def ensure_collection(
        self, name: str, model: str, dimension: int, kind: str, precision: str = "fp32"
    ) -> CollectionRow:
        """Create the collection, or check that it was built with the same model, dimension and precision:
        vectors of different models or precisions never mix in one index."""
        with self.transaction() as s:
            row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
            if row is None:
                row = CollectionRow(
                    name=name,
                    embedding_model=model,
                    dimension=dimension,
                    index_kind=kind,
                    precision=precision,
                )
                s.add(row)
                s.flush()
            elif (row.embedding_model, row.dimension) != (model, dimension):
                raise IndexMismatchError(
                    f"collection {name!r} was indexed with {row.embedding_model} (dimension {row.dimension}) "
                    f"but the configured model is {model} (dimension {dimension}); set "
                    f"ALMANAC_EMBEDDING__MODEL={row.embedding_model} or ingest into a new collection"
                )
            elif row.precision != precision:
                raise IndexMismatchError(
                    f"collection {name!r} holds {row.precision} vectors but the embedder runs in "
                    f"{precision}; set ALMANAC_EMBEDDING__PRECISION={row.precision} or ingest into a new "
                    "collection"
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
    def document_states(
        self, collection_id: int, prefix: str | None = None, sources: Sequence[str] | None = None
    ) -> dict[str, DocState]:
        """source -> DocState of a collection's documents: all, those whose source starts with `prefix`, or
        only the given `sources` (what adding a few files reads, whatever the collection's size)."""
        query = select(
            DocumentRow.source, DocumentRow.id, DocumentRow.content_hash, DocumentRow.mtime, DocumentRow.size
        ).where(DocumentRow.collection_id == collection_id)
        if prefix is not None:
            query = query.where(DocumentRow.source.startswith(prefix, autoescape=True))
        parts = (
            [query]
            if sources is None
            else [
                query.where(DocumentRow.source.in_(list(sources)[start : start + 500]))
                for start in range(0, len(sources), 500)
            ]
        )
        with self._sessions() as s:
            return {src: DocState(i, h, m, z) for part in parts for src, i, h, m, z in s.execute(part)}

    def iter_chunks(self, collection: str) -> Iterator[ChunkRecord]:
        """Every committed chunk of a collection, in id order."""
        row = self.require_collection(collection)
        query = self._record_query().where(ChunkRow.collection_id == row.id).order_by(ChunkRow.id)
        yield from self._records(query)

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

    # -- source databases ------------------------------------------------------------------------
    def register_source(self, name: str, url: str) -> None:
        """Remember a source database's URL under a name (used to re-read rows live)."""
        with self.transaction() as s:
            row = s.scalar(select(SourceRow).where(SourceRow.name == name))
            if row is None:
                s.add(SourceRow(name=name, url=url))
            else:
                row.url = url

    def holds_rows(self, collection: str, source: str, table: str | None = None) -> bool:
        """True when `collection` holds a row of `source` (of `table`, when given): ``db://SOURCE/TABLE/..``."""
        prefix = f"db://{source}/{table}/" if table is not None else f"db://{source}/"
        query = (
            select(DocumentRow.id)
            .join(CollectionRow, CollectionRow.id == DocumentRow.collection_id)
            .where(CollectionRow.name == collection, DocumentRow.source.startswith(prefix, autoescape=True))
            .limit(1)
        )
        with self._sessions() as s:
            return s.scalar(query) is not None

    def source_urls(self) -> dict[str, str]:
        """name -> URL of every registered source database."""
        with self._sessions() as s:
            return dict(s.execute(select(SourceRow.name, SourceRow.url)).tuples().all())
