"""Versioned FAISS files per collection: atomic publish for the writer, verified snapshots for readers.

Layout: ``ALMANAC_HOME/index/<collection>/v00000007.npz``. A file counts only once the catalog records it
(version, checksum, vector count); anything else in the folder is an orphan of a killed writer and is
overwritten or pruned. A recorded file that is missing, altered or disagrees with the catalog is never used:
the index is rebuilt from the vectors stored in the catalog.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow, IndexVersionRow
from almanac.core.errors import IndexMismatchError
from almanac.core.settings import IndexSettings
from almanac.core.vector_index import FaissIndex, build_index

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of one published index version; readers search it without locks."""

    collection: str
    version: int
    index: FaissIndex
    rebuilt: bool = False


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexStore:
    """Reads and writes the versioned index files under one folder."""

    def __init__(self, index_dir: Path, settings: IndexSettings) -> None:
        self.index_dir = index_dir
        self.settings = settings

    def path_for(self, collection: str, version: int) -> Path:
        """Where version `version` of a collection's index lives."""
        return self.index_dir / collection / f"v{version:08d}.npz"

    def write(self, collection: str, version: int, index: FaissIndex) -> tuple[Path, str]:
        """Write to a temporary name, fsync, then rename into place; returns (path, sha256)."""
        final = self.path_for(collection, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        checksum = index.save(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return final, checksum

    def stage_version(
        self, session: Session, collection: CollectionRow, version: int, index: FaissIndex
    ) -> None:
        """Write `index` as `version` of `collection` and record it in `session`: readers use the file only
        once that transaction commits (with the chunks it covers)."""
        path, checksum = self.write(collection.name, version, index)
        session.add(
            IndexVersionRow(
                collection_id=collection.id,
                version=version,
                model=collection.embedding_model,
                dimension=collection.dimension,
                vector_count=len(index),
                checksum=checksum,
                path=str(path.resolve()),
            )
        )

    def rebuild(self, catalog: Catalog, collection: CollectionRow) -> FaissIndex:
        """A fresh index from the vectors stored in the catalog (the source of truth)."""
        parts = list(catalog.iter_vectors(collection.id))
        if parts:
            ids = np.concatenate([p[0] for p in parts])
            vectors = np.concatenate([p[1] for p in parts])
        else:
            ids = np.zeros(0, dtype=np.int64)
            vectors = np.zeros((0, collection.dimension), dtype=np.float32)
        settings = self.settings.model_copy(update={"kind": collection.index_kind})
        return build_index(collection.dimension, settings, ids, vectors)

    def load(self, catalog: Catalog, collection: str) -> Snapshot:
        """The latest recorded version, verified; rebuilt from the catalog when anything disagrees."""
        row = catalog.require_collection(collection)
        latest = catalog.latest_version(row.id)
        if latest is not None:
            try:
                index = self._verified(latest.path, latest.checksum, latest.vector_count, row)
                return Snapshot(collection, latest.version, index)
            except (OSError, IndexMismatchError, ValueError) as exc:
                log.warning(
                    "event=index_rebuild collection=%s version=%s reason=%s", collection, latest.version, exc
                )
        return Snapshot(collection, latest.version if latest else 0, self.rebuild(catalog, row), rebuilt=True)

    def _verified(self, path: str, checksum: str, count: int, row: CollectionRow) -> FaissIndex:
        settings = self.settings.model_copy(update={"kind": row.index_kind})
        index = FaissIndex.load(Path(path), settings, expected_sha256=checksum)
        if index.dimension != row.dimension:
            raise IndexMismatchError(
                f"index file {path} has dimension {index.dimension}, catalog {row.dimension}"
            )
        if len(index) != count:
            raise IndexMismatchError(
                f"index file {path} holds {len(index)} vectors, catalog recorded {count}"
            )
        return index

    def prune(self, collection: str, keep: set[int]) -> None:
        """Delete index files of versions not in `keep` and orphans of killed writers (derived data only)."""
        folder = self.index_dir / collection
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            orphan = path.name.startswith(".") and path.name.endswith(".tmp")
            version = int(path.stem[1:]) if path.suffix == ".npz" and path.stem[1:].isdigit() else None
            if orphan or (version is not None and version not in keep):
                path.unlink(missing_ok=True)
