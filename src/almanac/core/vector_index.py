"""FAISS vector index per collection: exact inner product by default, HNSW or IVF on request.

The catalog is the source of truth; this index is a derived cache, rebuilt from it by `build_index`.
Readers search a snapshot while the writer mutates a `copy()` and publishes it with `save`:

    >>> index = FaissIndex(4)
    >>> index.add(np.array([7], dtype=np.int64), np.eye(4, dtype=np.float32)[:1])
    >>> scores, ids = index.search(np.eye(4, dtype=np.float32)[:1], k=2)
    >>> ids.tolist(), len(index)
    ([[7, -1]], 1)

Kinds: ``flat`` (IndexIDMap2 over IndexFlatIP, exact), ``hnsw`` (IndexHNSWFlat under IndexIDMap2; it cannot
remove, so removed ids are tombstones filtered out at search time until `needs_rebuild()`), ``ivf``
(IndexIVFFlat trained by `build_index`, flat until there are enough vectors to train). `save` and `load`
use the file format of `almanac.core.index_file`; inputs are checked by `almanac.core.vector_batch`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from almanac.core.errors import ConfigError, InputError, LimitError
from almanac.core.index_file import IndexFile, index_kind, read_index_file, write_index_file
from almanac.core.settings import IndexSettings
from almanac.core.vector_batch import check_ids, check_vectors

log = logging.getLogger(__name__)

MIN_POINTS_PER_LIST = 39  # FAISS k-means wants at least 39 training points per centroid
MAX_K = 16_384
GPU_MAX_K = 2048  # FAISS GPU search limit; larger k is served by the CPU index


def _want_gpu(settings: IndexSettings) -> bool:
    """Whether flat/IVF searches run on a GPU copy; asking for an absent GPU is a configuration error."""
    gpus = faiss.get_num_gpus()
    if settings.use_gpu and gpus == 0:
        raise ConfigError(
            "index.use_gpu is true but FAISS sees no GPU; install the `gpu` extra (faiss-gpu-cu12) on a "
            "CUDA machine or set ALMANAC_INDEX__USE_GPU=false"
        )
    return bool(settings.use_gpu) or (settings.use_gpu is None and gpus > 0)


def _new_faiss(kind: str, dimension: int, settings: IndexSettings, nlist: int = 0) -> faiss.Index:
    spec = {"flat": "IDMap2,Flat", "hnsw": f"IDMap2,HNSW{settings.hnsw_m}", "ivf": f"IVF{nlist},Flat"}
    return faiss.index_factory(dimension, spec[kind], faiss.METRIC_INNER_PRODUCT)


def _id_map(index: faiss.Index) -> faiss.IndexIDMap2:
    """A flat or HNSW index as the IDMap2 it is (`index_kind`); faiss's stubs type every index as `Index`."""
    assert isinstance(index, faiss.IndexIDMap2), type(index).__name__
    return index


def _hnsw(index: faiss.Index) -> faiss.IndexHNSW:
    """The HNSW graph index under an ``IDMap2,HNSW`` index."""
    inner = faiss.downcast_index(_id_map(index).index)
    assert isinstance(inner, faiss.IndexHNSW), type(inner).__name__
    return inner


class FaissIndex:
    """Inner-product search over int64-labelled float32 vectors (fits the VectorIndex port)."""

    def __init__(self, dimension: int, settings: IndexSettings | None = None) -> None:
        settings = settings or IndexSettings()
        if dimension < 1:
            raise ConfigError(f"index dimension must be >= 1, got {dimension}")
        if settings.kind == "ivf":
            log.info("index_fallback wanted=ivf kind=flat reason=untrained need=%d", MIN_POINTS_PER_LIST)
        kind = "hnsw" if settings.kind == "hnsw" else "flat"
        self._setup(_new_faiss(kind, dimension, settings), settings, np.empty(0, np.int64))

    def _setup(self, index: faiss.Index, settings: IndexSettings, tombstones: np.ndarray) -> None:
        self._index = index
        self._settings = settings
        self.dimension: int = int(index.d)
        self.kind: str = index_kind(index)
        self._nlist = int(faiss.extract_index_ivf(index).nlist) if self.kind == "ivf" else 0
        self._use_gpu = self.kind != "hnsw" and _want_gpu(settings)
        self._gpu_index: faiss.Index | None = None
        if self.kind == "hnsw":
            _hnsw(index).hnsw.efSearch = settings.hnsw_ef_search
        elif self.kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = settings.ivf_nprobe
        self._set_tombstones(tombstones)

    @classmethod
    def _wrap(cls, index: faiss.Index, settings: IndexSettings, tombstones: np.ndarray) -> FaissIndex:
        obj = cls.__new__(cls)
        obj._setup(index, settings, tombstones)
        return obj

    def _set_tombstones(self, tombstones: np.ndarray) -> None:
        # Built once per change, never during a search, so concurrent readers share them safely.
        self._tombstones = np.unique(tombstones.astype(np.int64))
        batch = faiss.IDSelectorBatch(self._tombstones)
        self._live_selector = (batch, faiss.IDSelectorNot(batch))  # keep `batch` alive with its wrapper

    def _stored_ids(self) -> np.ndarray:
        """Every id FAISS holds, tombstoned ones included."""
        if self.kind != "ivf":
            return faiss.vector_to_array(_id_map(self._index).id_map).astype(np.int64)
        lists = faiss.extract_index_ivf(self._index).invlists
        assert lists is not None  # an IVF index owns its inverted lists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(self._nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def ids(self) -> np.ndarray:
        """Live ids, sorted (for consistency checks against the catalog)."""
        stored = self._stored_ids()
        return np.sort(stored[~np.isin(stored, self._tombstones)])

    def __len__(self) -> int:
        """Live vectors (tombstoned ones excluded)."""
        return int(self._index.ntotal) - len(self._tombstones)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new int64 ids; an id already stored (or tombstoned) is an InputError."""
        ids, vectors = check_ids(ids), check_vectors(vectors, self.dimension)
        if len(ids) != len(vectors):
            raise InputError(f"got {len(ids)} ids for {len(vectors)} vectors; pass one id per vector")
        if len(np.unique(ids)) != len(ids):
            raise InputError("duplicate ids in one add call; each vector needs its own id")
        clash = ids[np.isin(ids, self._stored_ids())]
        if clash.size:
            hint = "rebuild first (HNSW keeps removed ids)" if self.kind == "hnsw" else "remove them first"
            raise InputError(f"{clash.size} ids are already in the index (first {clash[0]}); {hint}")
        if ids.size:
            self._index.add_with_ids(vectors, ids)
            self._gpu_index = None

    def remove(self, ids: np.ndarray) -> None:
        """Remove ids; unknown ids are ignored. HNSW marks them as tombstones instead."""
        ids = check_ids(ids)
        if not ids.size:
            return
        if self.kind == "hnsw":
            known = ids[np.isin(ids, self._stored_ids())]
            self._set_tombstones(np.concatenate([self._tombstones, known]))
        else:
            self._index.remove_ids(ids)  # type: ignore[arg-type]  # the stubs miss the wrapper's array form
            self._gpu_index = None

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(vectors), k), best first; empty slots have id -1 and score -inf."""
        vectors = check_vectors(vectors, self.dimension)
        if not 1 <= k <= MAX_K:
            raise LimitError(f"k must be between 1 and {MAX_K}, got {k}")
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), k), -1, dtype=np.int64)
        fetch = min(k, len(self))
        if fetch == 0 or len(vectors) == 0:
            return scores, ids
        found_scores, found_ids = self._search_live(vectors, fetch)
        scores[:, :fetch], ids[:, :fetch] = found_scores, found_ids
        scores[ids == -1] = -np.inf  # FAISS marks empty slots with -FLT_MAX
        return scores, ids

    def _search_live(self, vectors: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind != "hnsw":
            return self._searcher(fetch).search(vectors, fetch)
        if fetch >= len(self):
            return self._scan_hnsw_storage(vectors, fetch)
        if not self._tombstones.size:
            return self._index.search(vectors, fetch)
        params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]  # missing from faiss's stubs
            sel=self._live_selector[1], efSearch=self._settings.hnsw_ef_search
        )
        return self._index.search(vectors, fetch, params=params)

    def _scan_hnsw_storage(self, vectors: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scan of HNSW's own flat storage: a graph walk may miss vectors when k nears the total."""
        storage = faiss.downcast_index(_hnsw(self._index).storage)
        over = min(int(storage.ntotal), fetch + len(self._tombstones))  # over-fetch past tombstones
        scores, rows = storage.search(vectors, over)
        ids = np.where(rows >= 0, faiss.vector_to_array(_id_map(self._index).id_map)[rows], -1)
        keep = (ids >= 0) & ~np.isin(ids, self._tombstones)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :fetch]  # live hits first, rank order kept
        ids = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
        return np.take_along_axis(scores, order, axis=1), ids

    def _searcher(self, fetch: int) -> faiss.Index:
        if not self._use_gpu or fetch > GPU_MAX_K:
            return self._index
        if self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu_index

    @property
    def tombstone_ratio(self) -> float:
        """Share of stored vectors that are removed but still in the HNSW graph (0 for flat and IVF)."""
        total = int(self._index.ntotal)
        return len(self._tombstones) / total if total else 0.0

    def rebuild_reason(self) -> str | None:
        """Why a rebuild from the catalog would pay off now, or None."""
        wanted = self._settings.kind
        if wanted != self.kind and not (wanted == "ivf" and self.kind == "flat"):
            return f"index kind is {self.kind} but settings ask for {wanted}"
        if self.tombstone_ratio > self._settings.rebuild_tombstone_ratio:
            return f"tombstone ratio {self.tombstone_ratio:.2f} > {self._settings.rebuild_tombstone_ratio}"
        trainable = min(self._settings.ivf_nlist, len(self) // MIN_POINTS_PER_LIST)
        if wanted == "ivf" and trainable >= max(1, 2 * self._nlist):
            return f"enough vectors to train ivf with {trainable} lists (now {self._nlist})"
        return None

    def needs_rebuild(self) -> bool:
        """True when `rebuild_reason()` gives a reason (tombstones, kind change, IVF can train more lists)."""
        return self.rebuild_reason() is not None

    def copy(self) -> FaissIndex:
        """An independent deep copy: the writer mutates a copy while readers keep their snapshot."""
        return self._wrap(faiss.clone_index(self._index), self._settings, self._tombstones.copy())

    def save(self, path: Path) -> str:
        """Write the CPU index to exactly `path` (the caller renames it into place), fsync, return sha256."""
        return write_index_file(path, IndexFile(self._index, self._tombstones))

    @classmethod
    def load(
        cls, path: Path, settings: IndexSettings | None = None, expected_sha256: str | None = None
    ) -> FaissIndex:
        """Read a file written by `save`; a missing, corrupt or mismatching file is an IndexMismatchError."""
        stored = read_index_file(Path(path), expected_sha256)
        return cls._wrap(stored.index, settings or IndexSettings(), stored.tombstones)


def build_index(dimension: int, settings: IndexSettings, ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
    """Build (and for IVF, train) an index from scratch: used to rebuild from the catalog."""
    nlist = min(settings.ivf_nlist, len(vectors) // MIN_POINTS_PER_LIST)
    if settings.kind != "ivf" or nlist < 1:
        index = FaissIndex(dimension, settings)  # logs the IVF fallback to flat
        index.add(ids, vectors)
        return index
    vectors = check_vectors(vectors, dimension)
    ivf = _new_faiss("ivf", dimension, settings, nlist)
    ivf.train(vectors)
    index = FaissIndex._wrap(ivf, settings, np.empty(0, np.int64))
    index.add(ids, vectors)
    log.info("index_built kind=ivf nlist=%d vectors=%d", nlist, len(vectors))
    return index
