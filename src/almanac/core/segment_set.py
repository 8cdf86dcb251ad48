"""A collection's index in memory: immutable segments (dense + lexical each) and the ids deleted from them.

A search runs over every segment and merges the results by score; deleted ids and ids outside a filter are
excluded inside each segment's search (a FAISS ID selector over a bitmap, a zero in the BM25 score mask),
so they never take a place in the top k. A new version is applied as a delta (`with_changes`): the
segments already loaded are shared, only new ones are read.

    >>> settings = IndexSettings(kind="flat")
    >>> one = Segment.build("s1", 2, settings, np.array([1, 2]), np.eye(2, dtype=np.float32), ["a", "b"])
    >>> live = SegmentSet([one], deleted=np.array([2]))
    >>> scores, ids = live.search(np.array([[0.0, 1.0]], dtype=np.float32), k=2)
    >>> ids.tolist(), len(live)
    ([[1, -1]], 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from almanac.core.lexical_index import LexicalIndex, lucene_idf, query_terms
from almanac.core.segment_file import SegmentFile, read_segment_file, write_segment_file
from almanac.core.settings import IndexSettings
from almanac.core.vector_index import FaissIndex, build_index

_EMPTY = np.empty(0, np.int64)


@dataclass(frozen=True, slots=True)
class Segment:
    """One immutable segment: sorted chunk ids, their FAISS index and their BM25 index."""

    name: str
    index: FaissIndex
    lexical: LexicalIndex

    @property
    def ids(self) -> np.ndarray:
        """The segment's chunk ids, sorted (the lexical index keeps them in this order)."""
        return self.lexical.ids()

    @classmethod
    def build(
        cls,
        name: str,
        dimension: int,
        settings: IndexSettings,
        ids: np.ndarray,
        vectors: np.ndarray,
        texts: Sequence[str],
    ) -> Segment:
        """A segment over chunks given in any order (they are sorted by id)."""
        order = np.argsort(ids, kind="stable")
        ids = np.asarray(ids, np.int64)[order]
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), dimension)[order]
        lexical = LexicalIndex.build(ids.tolist(), [texts[i] for i in order])
        return cls(name, build_index(dimension, settings, ids, vectors), lexical)

    def save(self, path: Path) -> str:
        """Write to exactly `path` (the caller renames it into place), fsync; returns the sha256."""
        return write_segment_file(path, SegmentFile(self.index.faiss_index, self.lexical.to_arrays()))

    @classmethod
    def load(cls, name: str, path: Path, settings: IndexSettings, checksum: str | None) -> Segment:
        """Read a segment file; a missing, altered or inconsistent one is an IndexMismatchError."""
        stored = read_segment_file(path, checksum)
        return cls(name, FaissIndex(stored.index, settings), LexicalIndex.from_arrays(stored.lexical))


def _bitmap(ids: np.ndarray, size: int) -> np.ndarray:
    bits = np.zeros(size, dtype=bool)
    bits[ids[(ids >= 0) & (ids < size)]] = True
    return bits


class _Selection:
    """The ids a search may return, as a bitmap shared by the FAISS selector and the BM25 masks."""

    def __init__(self, allowed: np.ndarray, size: int) -> None:
        self.bits = _bitmap(allowed, size)
        self._packed = np.packbits(self.bits, bitorder="little")  # kept alive: FAISS reads it in place
        self.selector = faiss.IDSelectorBitmap(len(self._packed), faiss.swig_ptr(self._packed))

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """1.0 for allowed ids, 0.0 for the rest (a BM25 weight mask)."""
        mask: np.ndarray = self.bits[ids].astype(np.float32)
        return mask


class SegmentSet:
    """The searchable index of one version: segments minus deleted ids. Safe to search from many threads."""

    def __init__(self, segments: Iterable[Segment], deleted: np.ndarray = _EMPTY) -> None:
        self.segments = tuple(segments)
        self._size = 1 + max((int(s.ids[-1]) for s in self.segments if len(s.ids)), default=0)
        stored = np.concatenate([s.ids for s in self.segments]) if self.segments else _EMPTY
        self.deleted = np.unique(np.asarray(deleted, np.int64))
        present = self.deleted[(self.deleted >= 0) & (self.deleted < self._size)]
        live = np.ones(self._size, dtype=bool)
        live[present] = False
        self._count = int(live[stored].sum()) if stored.size else 0
        self._live = _Selection(np.flatnonzero(live), self._size) if present.size else None

    def __len__(self) -> int:
        """Live vectors."""
        return self._count

    def ids(self) -> np.ndarray:
        """Live chunk ids, sorted."""
        stored = np.sort(np.concatenate([s.ids for s in self.segments])) if self.segments else _EMPTY
        return stored[~np.isin(stored, self.deleted)]

    def names(self) -> set[str]:
        """Names of the segments held."""
        return {s.name for s in self.segments}

    def with_changes(self, added: Iterable[Segment], dropped: set[str], deleted: np.ndarray) -> SegmentSet:
        """The next version: this set's segments (less `dropped`) plus `added`, with `deleted` ids."""
        kept = [s for s in self.segments if s.name not in dropped]
        return SegmentSet(sorted([*kept, *added], key=lambda s: int(s.ids[0]) if len(s.ids) else -1), deleted)

    def _selection(self, allowed: np.ndarray | None) -> _Selection | None:
        if allowed is None:
            return self._live
        allowed = np.asarray(allowed, np.int64)
        return _Selection(allowed[~np.isin(allowed, self.deleted)], self._size)

    def search(
        self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense search: (scores, ids), each (len(vectors), k), best first; empty slots id -1, score -inf.
        With `allowed`, only those ids are returned."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        selection = self._selection(allowed)
        selector = selection.selector if selection is not None else None
        parts = [s.index.search(vectors, k, selector) for s in self.segments if len(s.ids)]
        if not parts:
            return np.full((len(vectors), k), -np.inf, np.float32), np.full((len(vectors), k), -1, np.int64)
        scores = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, best, axis=1), np.take_along_axis(ids, best, axis=1)

    def search_lexical(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """BM25 search: up to k (chunk id, score) pairs, best first; with `allowed`, only those ids.

        Term statistics are summed over the segments (as Lucene does), so a rare term scores the same in a
        small new segment as it would in one index of the whole collection.
        """
        terms = query_terms(query)
        documents = sum(len(segment.ids) for segment in self.segments)
        frequencies: Counter[str] = Counter()
        for segment in self.segments:
            frequencies.update(segment.lexical.document_frequencies(terms))
        idf = {term: lucene_idf(df, documents) for term, df in frequencies.items()}
        selection = self._selection(allowed)
        found: list[tuple[int, float]] = []
        for segment in self.segments:
            mask = selection.mask(segment.ids) if selection is not None and len(segment.ids) else None
            found.extend(segment.lexical.search(query, k, mask, idf))
        found.sort(key=lambda hit: (-hit[1], hit[0]))
        return found[:k]
