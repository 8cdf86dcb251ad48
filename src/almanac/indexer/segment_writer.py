"""The writer's side of the segmented index: each commit publishes one new segment and its deletions as a
version; merges and repairs publish like any commit (DESIGN.md, Invariants).

A commit's cost grows with the commit, not with the collection: it writes only the new chunks' vectors
and BM25 postings as a segment file and records the ids it deleted. Merges read their chunks back from the
catalog (the source of truth), so a merge also drops deleted ids for good and never trusts a file. They
run on a thread of the writer while ingestion goes on; only their publish takes the publish lock, which
also orders commits, so versions stay a single sequence. Deletions committed while a merge was reading
stay recorded and apply to the merged segment.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow, IndexSegmentRow
from almanac.core.index_manifest import (
    Manifest,
    SegmentEntry,
    VersionChange,
    forget_dropped,
    read_manifest,
    stage_version,
)
from almanac.core.index_store import IndexStore, segment_name
from almanac.core.segment_set import Segment
from almanac.core.vector_index import segment_kind
from almanac.indexer.merge_policy import pick_merge

log = logging.getLogger(__name__)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KEEP_DROPPED_VERSIONS = 16  # a reader still loading an older version finds its files for this long


class SegmentWriter:
    """Publishes a collection's index versions. Only the holder of the writer lock uses one."""

    def __init__(
        self, catalog: Catalog, store: IndexStore, collection: CollectionRow, commit_size: int
    ) -> None:
        self.catalog, self.store, self.collection = catalog, store, collection
        self.commit_size = commit_size
        self.settings = store.settings.model_copy(update={"kind": collection.index_kind})
        self.max_segments = 3 * self.settings.merge_factor  # close() merges down to this many
        self.manifest = read_manifest(catalog, collection.id)
        self._lock = threading.RLock()  # held from a version's number to its commit
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._merger: threading.Thread | None = None

    @property
    def version(self) -> int:
        """The latest published version."""
        return self.manifest.version

    def repair_reason(self) -> str | None:
        """Why the published index cannot be trusted to match the catalog, or None."""
        stored = sum(entry.vector_count for entry in self.manifest.segments) - len(self.manifest.deleted)
        chunks = self.catalog.chunk_count(self.collection.id)
        if stored != self.manifest.vector_count or chunks != self.manifest.vector_count:
            return (
                f"index v{self.version} holds {stored} vectors, records {self.manifest.vector_count}, "
                f"the catalog has {chunks} chunks"
            )
        return None

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Hold around a commit's transaction: no merge publishes in between."""
        with self._lock:
            yield

    def _build(self, ids: np.ndarray, vectors: np.ndarray, texts: Sequence[str]) -> Segment:
        kind = segment_kind(len(ids), self.settings, collection=self.manifest.vector_count)
        settings = self.settings.model_copy(update={"kind": kind})
        return Segment.build("pending", self.collection.dimension, settings, ids, vectors, texts)

    def _publish_file(self, segment: Segment, version: int) -> SegmentEntry:
        segment = dataclasses.replace(segment, name=segment_name(version))
        checksum = self.store.write(self.collection.name, segment)
        first, last = (int(segment.ids[0]), int(segment.ids[-1])) if len(segment.ids) else (0, -1)
        return SegmentEntry(segment.name, segment.index.kind, len(segment.ids), checksum, first, last)

    def stage_commit(
        self, s: Session, ids: np.ndarray, vectors: np.ndarray, texts: Sequence[str], removed: np.ndarray
    ) -> Manifest:
        """Write the new chunks as a segment and record the version in `s`; call inside `publishing()`,
        commit, then pass the result to `committed`."""
        version = self.version + 1
        added = [self._publish_file(self._build(ids, vectors, texts), version)] if len(ids) else []
        removed = np.unique(np.asarray(removed, np.int64))
        manifest = Manifest(
            version,
            self.manifest.vector_count + len(ids) - len(removed),
            (*self.manifest.segments, *added),
            np.union1d(self.manifest.deleted, removed),
        )
        stage_version(s, self.collection, manifest, VersionChange(added=added, deleted=removed))
        return manifest

    def committed(self, manifest: Manifest) -> None:
        """The transaction that recorded `manifest` committed: adopt it, prune, start due merges."""
        with self._lock:
            self.manifest = manifest
            self._prune()
            if not self.settings.merge_in_background:
                while merge := self._due_merge():
                    self._merge(merge, force=True)
            elif self._due_merge():
                self._start_merger()
                self._wake.notify()

    def _deleted_per_segment(self) -> dict[str, int]:
        deleted = self.manifest.deleted
        return {
            e.name: int(np.count_nonzero((deleted >= e.first_id) & (deleted <= e.last_id)))
            for e in self.manifest.segments
        }

    def _due_merge(self) -> list[SegmentEntry]:
        return pick_merge(
            self.manifest.segments,
            self._deleted_per_segment(),
            self.commit_size,
            self.settings.merge_factor,
            self.settings.merge_deleted_ratio,
        )

    def _start_merger(self) -> None:
        if self._merger is None or not self._merger.is_alive():
            self._merger = threading.Thread(target=self._merge_loop, name="segment-merger", daemon=True)
            self._merger.start()

    def _merge_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closing and not (due := self._due_merge()):
                    self._wake.wait()
                if self._closing:
                    return
            try:
                self._merge(due)
            except Exception:  # a failed merge loses nothing: its inputs stay live
                log.exception("event=merge_failed collection=%s", self.collection.name)
                return

    def _merge(self, inputs: Sequence[SegmentEntry], everything: bool = False, force: bool = False) -> None:
        """Replace `inputs` (neighbours) by one segment of their live chunks, read from the catalog;
        `everything`: every chunk of the collection, whatever the segments say (a repair). A background
        merge that finds the writer closing publishes nothing; `force` publishes anyway."""
        low, high = (INT64_MIN, INT64_MAX) if everything else (inputs[0].first_id, inputs[-1].last_id)
        with self._lock:
            read_at, seen = self.version, self.manifest.deleted
        ids, vectors, texts = self.catalog.chunk_payloads(
            self.collection.id, *(() if everything else (low, high))
        )
        segment = self._build(ids, vectors, texts)  # the slow part, outside the lock
        absorbed = seen[(seen >= low) & (seen <= high)]
        with self._lock:
            if self._closing and not force:
                return  # abandoned: nothing was recorded
            self._publish_merge(inputs, segment, (low, high, read_at), absorbed, everything)

    def _publish_merge(
        self,
        inputs: Sequence[SegmentEntry],
        segment: Segment,
        absorbed: tuple[int, int, int],
        absorbed_ids: np.ndarray,
        everything: bool,
    ) -> None:
        low, high, _ = absorbed
        current, version = self.manifest, self.version + 1
        added = [self._publish_file(segment, version)] if len(segment.ids) else []
        gone = {e.name for e in current.segments} if everything else {e.name for e in inputs}
        kept = [e for e in current.segments if e.name not in gone]
        in_range = (current.deleted >= low) & (current.deleted <= high)
        remaining = current.deleted[in_range & ~np.isin(current.deleted, absorbed_ids)]
        live_before = sum(e.vector_count for e in current.segments if e.name in gone) - int(in_range.sum())
        live_after = len(segment.ids) - int(np.isin(segment.ids, remaining).sum())
        manifest = Manifest(
            version,
            live_after if everything else current.vector_count - live_before + live_after,
            tuple(sorted([*kept, *added], key=lambda e: e.first_id)),
            np.union1d(current.deleted[~in_range], remaining),
        )
        with self.catalog.transaction() as s:
            stage_version(s, self.collection, manifest, VersionChange(added, sorted(gone), None, absorbed))
        self.manifest = manifest
        log.info(
            "event=segments_merged collection=%s version=%d inputs=%d vectors=%d kind=%s",
            self.collection.name,
            version,
            len(gone),
            len(segment.ids),
            added[0].kind if added else "-",
        )

    def compact(self) -> int:
        """Rebuild the index as one segment from the catalog (dropping every deletion); returns the new
        version."""
        self.close()
        self._merge(self.manifest.segments, everything=True, force=True)
        with self._lock:
            self._prune()
        return self.version

    def repair(self, reason: str) -> None:
        """Publish an index rebuilt from the catalog, replacing every segment."""
        log.warning("event=index_repair collection=%s reason=%s", self.collection.name, reason)
        self.compact()

    def close(self) -> None:
        """Stop merging: with more than `max_segments` segments, merge down to that first (in line);
        otherwise a merge in progress is abandoned (the next writer or `almanac compact` does it). A
        collection under `single_segment_below` vectors is rewritten as one segment."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            while len(self.manifest.segments) > self.max_segments and (due := self._due_merge()):
                self._merge(due, force=True)
            small = self.manifest.vector_count < self.settings.single_segment_below
            if small and len(self.manifest.segments) > 1:
                self._merge(self.manifest.segments, everything=True, force=True)

    def _prune(self) -> None:
        with self.catalog.transaction() as s:
            forget_dropped(s, self.collection.id, self.version - KEEP_DROPPED_VERSIONS)
            query = select(IndexSegmentRow.name).where(IndexSegmentRow.collection_id == self.collection.id)
            keep = set(s.scalars(query))
        self.store.prune(self.collection.name, keep)
