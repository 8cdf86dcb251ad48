"""FAISS index of one segment: exact inner product (flat), or IVF / HNSW for large segments.

A collection's index is a set of immutable segments (core/segment_set.py); each holds one of these. Readers
search it from many threads; it is built once (`build_index`) and never changed afterwards:

    >>> settings = IndexSettings(kind="flat")
    >>> index = build_index(4, settings, np.array([7, 9]), np.eye(4, dtype=np.float32)[:2])
    >>> scores, ids = index.search(np.eye(4, dtype=np.float32)[:1], k=3)
    >>> ids.tolist(), len(index), index.kind
    ([[7, 9, -1]], 2, 'flat')

Searching with an ID selector (`live_selector`) restricts the search to some ids inside FAISS, so a filter
or a deletion never takes a place in the top k. Kinds: ``flat`` (IndexIDMap2 over IndexFlatIP, exact),
``ivf`` (IndexIVFFlat, clusters; trained when built; a restricted search probes every cluster, which keeps
it exact) and ``hnsw`` (IndexHNSWFlat under IndexIDMap2, graph; a restricted search is approximate).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import faiss
import numpy as np

from almanac.core.errors import ConfigError, InputError, LimitError
from almanac.core.segment_file import index_kind
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


def ivf_lists(count: int, settings: IndexSettings) -> int:
    """IVF clusters for `count` vectors: about 4·sqrt(n), at most `ivf_nlist`, 39+ training points each."""
    return max(0, min(settings.ivf_nlist, int(4 * math.sqrt(count)), count // MIN_POINTS_PER_LIST))


def segment_kind(count: int, settings: IndexSettings, collection: int = 0) -> str:
    """The kind of a segment of `count` vectors in a collection of `collection`: ``auto`` is exact below
    `ann_min_vectors`, IVF above; once the collection passes it, segments of a tenth of it are IVF too, so
    the part searched exactly stays under about `ann_min_vectors` / `merge_factor` per size tier."""
    wanted = settings.kind
    if wanted == "auto":
        big = count >= settings.ann_min_vectors
        grown = (
            collection >= settings.ann_min_vectors
            and count >= settings.ann_min_vectors // settings.merge_factor
        )
        wanted = "ivf" if big or grown else "flat"
    if wanted == "ivf" and ivf_lists(count, settings) < 2:
        return "flat"  # too few vectors to train clusters
    return wanted


class FaissIndex:
    """Inner-product search over int64-labelled float32 vectors; read-only once built."""

    def __init__(self, index: faiss.Index, settings: IndexSettings) -> None:
        self._index = index
        self.dimension: int = int(index.d)
        self.kind: str = index_kind(index)
        self._settings = settings
        self._nlist = int(faiss.extract_index_ivf(index).nlist) if self.kind == "ivf" else 0
        self._use_gpu = self.kind != "hnsw" and _want_gpu(settings)
        self._gpu_index: faiss.Index | None = None
        if self.kind == "ivf":  # probes: calibrated when built (kept in the file), at least the setting
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = max(int(ivf.nprobe), settings.ivf_nprobe)
        elif self.kind == "hnsw":
            id_map: Any = faiss.downcast_index(index)  # faiss's stubs type every index as `Index`
            hnsw: Any = faiss.downcast_index(id_map.index)
            hnsw.hnsw.efSearch = settings.hnsw_ef_search

    @property
    def faiss_index(self) -> faiss.Index:
        """The CPU FAISS index (what a segment file stores)."""
        return self._index

    def __len__(self) -> int:
        """Stored vectors."""
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Stored ids, sorted."""
        if self.kind != "ivf":
            index = faiss.downcast_index(self._index)
            assert isinstance(index, faiss.IndexIDMap2), type(index).__name__
            return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
        lists = faiss.extract_index_ivf(self._index).invlists
        assert lists is not None  # an IVF index owns its inverted lists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(self._nlist)
            if lists.list_size(i)
        ]
        return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.empty(0, np.int64)

    def search(
        self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(vectors), k), best first; empty slots have id -1 and score -inf.
        With `selector`, only ids it accepts are returned."""
        vectors = check_vectors(vectors, self.dimension)
        if not 1 <= k <= MAX_K:
            raise LimitError(f"k must be between 1 and {MAX_K}, got {k}")
        scores = np.full((len(vectors), k), -np.inf, dtype=np.float32)
        ids = np.full((len(vectors), k), -1, dtype=np.int64)
        fetch = min(k, len(self))
        if fetch == 0 or len(vectors) == 0:
            return scores, ids
        found_scores, found_ids = self._search(vectors, fetch, selector)
        scores[:, :fetch], ids[:, :fetch] = found_scores, found_ids
        scores[ids == -1] = -np.inf  # FAISS marks empty slots with -FLT_MAX
        return scores, ids

    def _search(
        self, vectors: np.ndarray, fetch: int, selector: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if selector is None:
            if self.kind != "flat" and fetch * 2 >= len(self):
                # near-total k: a graph walk or a few clusters may hold fewer than k, so search them all
                selector = faiss.IDSelectorAll()
            else:
                return self._searcher(fetch).search(vectors, fetch)
        params: Any  # the stubs lack the search parameter classes' fields
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self._nlist  # every cluster: a restricted IVF search stays exact
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from the stubs
            params.efSearch = max(self._settings.hnsw_ef_search, 4 * fetch)
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        return self._index.search(vectors, fetch, params=params)

    def _searcher(self, fetch: int) -> faiss.Index:
        if not self._use_gpu or fetch > GPU_MAX_K:
            return self._index
        if self._gpu_index is None:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
        return self._gpu_index


def calibrate_nprobe(
    index: faiss.Index, vectors: np.ndarray, settings: IndexSettings, queries: int = 64
) -> int:
    """The fewest IVF clusters to probe (doubling from `ivf_nprobe`) for recall@10 >= `ann_target_recall`
    against exact search, measured with stored vectors as queries (each one's own hit left out); kept in
    the index. Real embeddings cluster and need few probes; near-random vectors need many."""
    ivf = faiss.extract_index_ivf(index)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)]
    # the 10th best score after the query itself (column 0); a hit scoring as high counts (ties)
    truth = -np.partition(-(sample @ vectors.T), 10, axis=1)[:, 10:11]
    nprobe = min(settings.ivf_nprobe, ivf.nlist)
    while True:
        ivf.nprobe = nprobe
        scores, _ = index.search(sample, 11)
        recall = float(np.mean(scores[:, 1:11] >= truth - 1e-6))
        if recall >= settings.ann_target_recall or nprobe >= ivf.nlist:
            return nprobe
        nprobe = min(2 * nprobe, int(ivf.nlist))


def build_index(dimension: int, settings: IndexSettings, ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
    """A segment's index over (ids, vectors), of the kind `segment_kind` picks for their number."""
    ids, vectors = check_ids(ids), check_vectors(vectors, dimension)
    if len(ids) != len(vectors):
        raise InputError(f"got {len(ids)} ids for {len(vectors)} vectors; pass one id per vector")
    if len(np.unique(ids)) != len(ids):
        raise InputError("duplicate ids; each vector needs its own id")
    kind = segment_kind(len(ids), settings)
    if kind == "ivf":
        nlist = ivf_lists(len(ids), settings)
        index = faiss.index_factory(dimension, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add_with_ids(vectors, ids)
        nprobe = calibrate_nprobe(index, vectors, settings)
        log.info("event=ivf_trained nlist=%d nprobe=%d vectors=%d", nlist, nprobe, len(ids))
        return FaissIndex(index, settings)
    spec = f"IDMap2,HNSW{settings.hnsw_m}" if kind == "hnsw" else "IDMap2,Flat"
    index = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return FaissIndex(index, settings)
