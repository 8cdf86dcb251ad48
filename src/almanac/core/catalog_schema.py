"""The catalog's tables (SQLAlchemy 2 declarative). The catalog is the source of truth; FAISS is a cache.

collections ─< documents ─< chunks        each chunk keeps its text, hash, locator and float32 vector
collections ─< index_versions             a row per published index version (version, model, dim, count)
collections ─< index_segments             immutable segment files (vectors + BM25), each with its sha256,
                                          the version that added it and the version whose merge dropped it
collections ─< index_deletions            chunk ids a version deleted from segments still live
sources                                   registered source databases (for live row re-reads)
jobs, api_keys                            server state that must survive a restart
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; elsewhere BIGINT identities keep ids never reused.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Timezone-aware now, for timestamps."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class CollectionRow(Base):
    """A named set of documents searched together, with the embedding model that built its vectors."""

    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    embedding_model: Mapped[str] = mapped_column(String(512))
    dimension: Mapped[int] = mapped_column(Integer)
    index_kind: Mapped[str] = mapped_column(String(16), default="flat")
    precision: Mapped[str] = mapped_column(String(16), default="fp32")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DocumentRow(Base):
    """One source: a file path or a database row URI (``db://source/table/pk=..``)."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A row's column values as strings (None for files): what `key=value` search filters match.
    fields: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True, default=None)


class ChunkRow(Base):
    """A chunk of a document, with the vector it was embedded to (float32 bytes)."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_collection_hash", "collection_id", "content_hash"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(Integer, index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    locator: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IndexVersionRow(Base):
    """A published index version; recorded in the transaction that commits its chunks.

    `checksum` is the sha256 of the version's manifest (its live segments' names and checksums) and `path`
    the collection's segment folder.
    """

    __tablename__ = "index_versions"
    __table_args__ = (UniqueConstraint("collection_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(512))
    dimension: Mapped[int] = mapped_column(Integer)
    vector_count: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexSegmentRow(Base):
    """An immutable segment file of a collection's index: live from `added_version` until the version whose
    merge replaced it (`dropped_version`)."""

    __tablename__ = "index_segments"
    __table_args__ = (UniqueConstraint("collection_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    vector_count: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    # Chunk ids only grow, and merges join neighbouring segments: a segment owns every chunk id in
    # [first_id, last_id], so a merge reads its chunks back from the catalog by that range.
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    added_version: Mapped[int] = mapped_column(Integer)
    dropped_version: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class IndexDeletionRow(Base):
    """A chunk id deleted by `version` from a segment that is still live (dropped when a merge absorbs it)."""

    __tablename__ = "index_deletions"
    __table_args__ = (Index("ix_index_deletions_collection_chunk", "collection_id", "chunk_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    chunk_id: Mapped[int] = mapped_column(BigInteger)


class SourceRow(Base):
    """A registered source database; its URL stays server-side and never enters a prompt."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A bulk ingestion job; state survives a server restart."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An API key, stored as a salted hash; only its prefix is shown back."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[bool] = mapped_column(default=False)
