"""A collection's index manifest in the catalog: which segments are live at a version, which ids are deleted.

Version V of a collection is: the segments added at or before V and not dropped by then, minus the chunk
ids in `index_deletions` up to V. The writer records each version in the transaction that commits its
chunks (`stage_version`); readers read a manifest (`read_manifest`) and re-read when a newer version
appeared meanwhile, so a merge that commits between their queries is never half seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow, IndexDeletionRow, IndexSegmentRow, IndexVersionRow


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """A segment as the catalog records it."""

    name: str
    kind: str
    vector_count: int
    checksum: str
    first_id: int
    last_id: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What version `version` of a collection consists of (version 0: nothing published yet)."""

    version: int
    vector_count: int
    segments: tuple[SegmentEntry, ...]
    deleted: np.ndarray  # sorted chunk ids deleted from live segments

    def checksum(self) -> str:
        """sha256 over the live segments' names and checksums (recorded with the version)."""
        lines = "\n".join(f"{s.name}:{s.checksum}" for s in self.segments)
        return hashlib.sha256(lines.encode()).hexdigest()


def _entry(row: IndexSegmentRow) -> SegmentEntry:
    return SegmentEntry(row.name, row.kind, row.vector_count, row.checksum, row.first_id, row.last_id)


def _read_at(s: Session, collection_id: int, version: int) -> tuple[list[SegmentEntry], np.ndarray]:
    live = (
        select(IndexSegmentRow)
        .where(
            IndexSegmentRow.collection_id == collection_id,
            IndexSegmentRow.added_version <= version,
            or_(IndexSegmentRow.dropped_version.is_(None), IndexSegmentRow.dropped_version > version),
        )
        .order_by(IndexSegmentRow.first_id)
    )
    deleted = select(IndexDeletionRow.chunk_id).where(
        IndexDeletionRow.collection_id == collection_id, IndexDeletionRow.version <= version
    )
    ids = np.fromiter(s.scalars(deleted), dtype=np.int64)
    return [_entry(row) for row in s.scalars(live)], np.unique(ids)


def latest_version(s: Session, collection_id: int) -> IndexVersionRow | None:
    """The newest version row of a collection."""
    query = select(IndexVersionRow).where(IndexVersionRow.collection_id == collection_id)
    return s.scalar(query.order_by(IndexVersionRow.version.desc()).limit(1))


def read_manifest(catalog: Catalog, collection_id: int, attempts: int = 5) -> Manifest:
    """The latest version's manifest; re-read when the writer published another version meanwhile."""
    for _ in range(attempts):
        with catalog.transaction() as s:
            head = latest_version(s, collection_id)
            if head is None:
                return Manifest(0, 0, (), np.empty(0, np.int64))
            segments, deleted = _read_at(s, collection_id, head.version)
            again = latest_version(s, collection_id)
        if again is not None and again.version == head.version:
            return Manifest(head.version, head.vector_count, tuple(segments), deleted)
    raise TimeoutError(f"the index changed {attempts} times while being read; try again")


@dataclass(frozen=True, slots=True)
class VersionChange:
    """What one version adds to the previous one."""

    added: Sequence[SegmentEntry] = ()
    dropped: Sequence[str] = ()
    deleted: np.ndarray | None = None  # chunk ids this version deletes from live segments
    # (first id, last id, up to version): deletion records a merge made obsolete (it read the catalog then)
    absorbed: tuple[int, int, int] | None = None


def stage_version(s: Session, collection: CollectionRow, manifest: Manifest, change: VersionChange) -> None:
    """Record `manifest` (the new version) and its `change` in the open transaction `s`."""
    cid, version = collection.id, manifest.version
    for entry in change.added:
        s.add(IndexSegmentRow(collection_id=cid, added_version=version, **_columns(entry)))
    if change.dropped:
        s.execute(
            update(IndexSegmentRow)
            .where(IndexSegmentRow.collection_id == cid, IndexSegmentRow.name.in_(list(change.dropped)))
            .values(dropped_version=version)
        )
    if change.deleted is not None and change.deleted.size:
        rows = [{"collection_id": cid, "version": version, "chunk_id": int(i)} for i in change.deleted]
        s.execute(insert(IndexDeletionRow), rows)
    if change.absorbed is not None:
        first, last, upto = change.absorbed
        s.execute(
            delete(IndexDeletionRow).where(
                IndexDeletionRow.collection_id == cid,
                IndexDeletionRow.chunk_id.between(first, last),
                IndexDeletionRow.version <= upto,
            )
        )
    s.add(
        IndexVersionRow(
            collection_id=cid,
            version=version,
            model=collection.embedding_model,
            dimension=collection.dimension,
            vector_count=manifest.vector_count,
            checksum=manifest.checksum(),
            path="",
        )
    )


def _columns(entry: SegmentEntry) -> dict[str, object]:
    return {
        "name": entry.name,
        "kind": entry.kind,
        "vector_count": entry.vector_count,
        "checksum": entry.checksum,
        "first_id": entry.first_id,
        "last_id": entry.last_id,
    }


def forget_dropped(s: Session, collection_id: int, before_version: int) -> list[str]:
    """Delete the records of segments dropped before `before_version`; returns their names (files to
    delete once the transaction commits)."""
    old = (
        IndexSegmentRow.collection_id == collection_id,
        IndexSegmentRow.dropped_version.is_not(None),
        IndexSegmentRow.dropped_version < before_version,
    )
    names = list(s.scalars(select(IndexSegmentRow.name).where(*old)))
    if names:
        s.execute(delete(IndexSegmentRow).where(*old))
    return names
