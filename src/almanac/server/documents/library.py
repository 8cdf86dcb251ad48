"""The documents of a collection over REST: upload (saved, then ingested as a job), list, delete.

An upload is saved as ALMANAC_HOME/uploads/<collection>/<safe name>: the client's name reduced to its last
part and to ``[A-Za-z0-9._-]`` (no path traversal, no hidden files); uploading the same name again replaces
that document. The saved files are ingested by an ``upload`` job through the indexer pipeline (the one
writer); the route waits for the job up to a deadline and otherwise answers with the job to poll. A delete
is a ``delete`` job too, which also removes the uploaded file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import ChunkRow, CollectionRow, DocumentRow
from almanac.core.errors import FileTooLargeError, InputError, NotFoundError
from almanac.core.settings import Settings
from almanac.indexer.readers import SUPPORTED_SUFFIXES
from almanac.server.jobs.fair_share import OPEN_OWNER
from almanac.server.jobs.runner import JobRunner
from almanac.server.jobs.store import JobView

MAX_FILES = 20  # files per upload request
_COLLECTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_COPY_BLOCK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One document as GET /v1/documents lists it."""

    id: int
    source: str
    kind: str
    title: str
    chunks: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """A page of a collection's documents."""

    collection: str
    documents: list[DocumentInfo]
    total: int
    offset: int
    limit: int


def safe_name(name: str) -> str:
    """A file name safe to join to a folder: last path part, safe characters, no leading dot.

    >>> safe_name("../../etc/pass wd.md")
    'pass_wd.md'
    """
    base = re.split(r"[/\\]", name)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[-200:]
    suffix = Path(cleaned).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise InputError(f"cannot ingest {name!r}: unsupported file type; supported types: {supported}")
    return cleaned if Path(cleaned).stem.strip("_") else f"upload{suffix}"


class DocumentLibrary:
    """Uploads, lists and deletes a collection's documents."""

    def __init__(self, settings: Settings, catalog: Catalog, jobs: JobRunner) -> None:
        self.settings, self.catalog, self.jobs = settings, catalog, jobs

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files are kept."""
        return self.settings.home / "uploads"

    def upload(
        self,
        collection: str,
        files: list[tuple[str, BinaryIO]],
        idempotency_key: str | None = None,
        owner: str = OPEN_OWNER,
    ) -> JobView:
        """Check every file, save them all, queue their ingest; returns the job (await `jobs.wait_async`).

        A retry under the same Idempotency-Key returns the first job and saves nothing again; the same
        key with other files is refused before anything is written.
        """
        targets = self._targets(collection, [name for name, _ in files])
        digests = [self._digest(name, stream) for name, stream in files]
        if idempotency_key is not None:
            earlier = self.jobs.find_upload(targets, digests, collection, idempotency_key, owner)
            if earlier is not None:
                return earlier
        for target, (_, stream) in zip(targets, files, strict=True):
            self._write(target, stream)
        return self.jobs.submit_upload(targets, digests, collection, idempotency_key, owner)

    def _targets(self, collection: str, names: list[str]) -> list[Path]:
        if not _COLLECTION.match(collection):
            raise InputError(f"collection name {collection!r} must match {_COLLECTION.pattern}")
        if not names or len(names) > MAX_FILES:
            raise InputError(f"send between 1 and {MAX_FILES} files in the multipart field `file`")
        folder = (self.uploads_dir / collection).resolve()
        return [folder / safe_name(name) for name in names]

    def _digest(self, original: str, stream: BinaryIO) -> str:
        """sha256 of the stream, read to the end within the upload limit, then rewound."""
        limit = self.settings.server.max_upload_bytes
        digest, size = hashlib.sha256(), 0
        while block := stream.read(_COPY_BLOCK):
            size += len(block)
            if size > limit:
                raise FileTooLargeError(
                    f"{original!r} is over the upload limit of {limit} bytes; "
                    "split it or raise ALMANAC_SERVER__MAX_UPLOAD_BYTES"
                )
            digest.update(block)
        stream.seek(0)
        return digest.hexdigest()

    @staticmethod
    def _write(target: Path, stream: BinaryIO) -> None:
        """Write through a hidden partial file renamed into place, so a reader never sees half a file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            with partial.open("wb") as out:
                shutil.copyfileobj(stream, out, _COPY_BLOCK)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def list(self, collection: str, offset: int, limit: int) -> DocumentPage:
        """A page of the collection's documents, in id order, with their chunk counts."""
        row = self.catalog.require_collection(collection)
        chunks = (
            select(func.count(ChunkRow.id)).where(ChunkRow.document_id == DocumentRow.id).scalar_subquery()
        )
        query = (
            select(
                DocumentRow.id,
                DocumentRow.source,
                DocumentRow.kind,
                DocumentRow.title,
                chunks,
                DocumentRow.updated_at,
            )
            .where(DocumentRow.collection_id == row.id)
            .order_by(DocumentRow.id)
            .offset(offset)
            .limit(limit)
        )
        total_query = select(func.count()).where(DocumentRow.collection_id == row.id)
        with self.catalog.transaction() as s:
            docs = [DocumentInfo(*r) for r in s.execute(query).tuples()]
            total = s.scalar(total_query) or 0
        return DocumentPage(collection, docs, total, offset, limit)

    def locate(self, document_id: int, within: str | None = None) -> tuple[str, str]:
        """(collection, source) of a document; NotFoundError when there is none (in `within`, when given)."""
        query = (
            select(CollectionRow.name, DocumentRow.source)
            .join(CollectionRow, CollectionRow.id == DocumentRow.collection_id)
            .where(DocumentRow.id == document_id)
        )
        if within is not None:
            query = query.where(CollectionRow.name == within)
        with self.catalog.transaction() as s:
            found = s.execute(query).first()
        if found is None:
            raise NotFoundError(
                f"no document {document_id}; GET /v1/documents lists a collection's documents"
            )
        return found[0], found[1]

    def delete(self, document_id: int) -> JobView:
        """Queue the document's removal (and its uploaded file's); returns the queued job."""
        collection, source = self.locate(document_id)
        uploads = self.uploads_dir.resolve()
        files = [Path(source)] if Path(source).is_relative_to(uploads) else []
        return self.jobs.submit_delete([source], collection, files)
