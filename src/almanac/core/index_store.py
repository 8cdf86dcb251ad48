"""Segment files per collection, and the snapshots readers search.

Layout: ``ALMANAC_HOME/index/<collection>/s00000007.npz``, one file per segment, named after the version
that wrote it. A file counts only once the catalog records it (core/index_manifest.py); anything else in
the folder is an orphan of a killed writer and is overwritten or pruned. Readers load a version's segments
once and then apply each newer version as a delta (`refresh`); a recorded file that is missing, altered or
disagrees with the catalog is never used: the reader builds the index from the vectors and texts stored in
the catalog instead, and `almanac check` reports it.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow
from almanac.core.errors import IndexMismatchError
from almanac.core.index_manifest import Manifest, read_manifest
from almanac.core.segment_set import Segment, SegmentSet
from almanac.core.settings import IndexSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of one published index version; readers search it without locks."""

    collection: str
    version: int
    index: SegmentSet
    rebuilt: bool = False


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_name(version: int) -> str:
    """The file name of the segment written by `version`."""
    return f"s{version:08d}.npz"


class IndexStore:
    """Reads and writes the segment files under one folder."""

    def __init__(self, index_dir: Path, settings: IndexSettings) -> None:
        self.index_dir = index_dir
        self.settings = settings

    def path_for(self, collection: str, name: str) -> Path:
        """Where segment `name` of a collection lives."""
        return self.index_dir / collection / name

    def write(self, collection: str, segment: Segment) -> str:
        """Write to a temporary name, fsync, then rename into place; returns the sha256."""
        final = self.path_for(collection, segment.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        checksum = segment.save(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return checksum

    def rebuild(self, catalog: Catalog, collection: CollectionRow, name: str = "rebuilt") -> Segment:
        """One segment holding every chunk of the collection, from the catalog (the source of truth)."""
        ids, vectors, texts = catalog.chunk_payloads(collection.id)
        settings = self.settings.model_copy(update={"kind": collection.index_kind})
        return Segment.build(name, collection.dimension, settings, ids, vectors, texts)

    def load(self, catalog: Catalog, collection: str, previous: Snapshot | None = None) -> Snapshot:
        """The latest version: loaded whole, or as a delta over `previous` (its segments are reused).
        Anything that disagrees with the catalog gives an index rebuilt from the catalog instead."""
        row = catalog.require_collection(collection)
        manifest = read_manifest(catalog, row.id)
        try:
            return Snapshot(collection, manifest.version, self._apply(row, manifest, previous))
        except (OSError, IndexMismatchError, ValueError) as exc:
            log.warning(
                "event=index_rebuild collection=%s version=%s reason=%s", collection, manifest.version, exc
            )
        return Snapshot(collection, manifest.version, SegmentSet([self.rebuild(catalog, row)]), rebuilt=True)

    def _apply(self, row: CollectionRow, manifest: Manifest, previous: Snapshot | None) -> SegmentSet:
        base = previous.index if previous is not None and not previous.rebuilt else SegmentSet([])
        wanted = {entry.name for entry in manifest.segments}
        settings = self.settings.model_copy(update={"kind": row.index_kind})
        new = [entry for entry in manifest.segments if entry.name not in base.names()]
        # Reading, hashing and deserializing a file release the GIL: segments load side by side.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, max(1, len(new)))) as pool:
            added = list(
                pool.map(lambda e: self._verified(row, e.name, e.checksum, e.vector_count, settings), new)
            )
        index = base.with_changes(added, base.names() - wanted, manifest.deleted)
        if len(index) != manifest.vector_count:
            raise IndexMismatchError(
                f"index v{manifest.version} holds {len(index)} live vectors, the catalog recorded "
                f"{manifest.vector_count}"
            )
        return index

    def _verified(
        self, row: CollectionRow, name: str, checksum: str, count: int, settings: IndexSettings
    ) -> Segment:
        segment = Segment.load(name, self.path_for(row.name, name), settings, checksum)
        if segment.index.dimension != row.dimension:
            raise IndexMismatchError(
                f"segment {name} has dimension {segment.index.dimension}, the catalog {row.dimension}"
            )
        if len(segment.ids) != count:
            raise IndexMismatchError(f"segment {name} holds {len(segment.ids)} vectors, the catalog {count}")
        return segment

    def prune(self, collection: str, keep: set[str]) -> None:
        """Delete segment files not in `keep` and orphans of killed writers (derived data only)."""
        folder = self.index_dir / collection
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            orphan = path.name.startswith(".") and path.name.endswith(".tmp")
            if orphan or (path.suffix == ".npz" and path.name not in keep):
                path.unlink(missing_ok=True)
