"""FaissIndex and build_index against real FAISS, checked with numpy brute force as the oracle."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from almanac.core.errors import ConfigError, IndexMismatchError, InputError, LimitError
from almanac.core.settings import IndexSettings
from almanac.core.vector_index import MAX_K, FaissIndex, build_index, ivf_lists, segment_kind

DIM = 32
KINDS = ["flat", "hnsw", "ivf"]


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def index_settings(kind: str, **overrides: object) -> IndexSettings:
    # nprobe == nlist makes an unrestricted IVF search exhaustive, so it can be compared with brute force.
    values: dict[str, object] = {"kind": kind, "ivf_nlist": 16, "ivf_nprobe": 16, "use_gpu": False}
    return IndexSettings(**(values | overrides))


def brute_force(
    base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ base.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def built(
    kind: str, n: int = 1000, seed: int = 0, **overrides: object
) -> tuple[FaissIndex, np.ndarray, np.ndarray]:
    ids = np.arange(n, dtype=np.int64) * 3 + 11  # sparse ids: labels are not positions
    vectors = unit_vectors(n, seed)
    return build_index(DIM, index_settings(kind, **overrides), ids, vectors), ids, vectors


def bitmap_selector(allowed: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray]:
    """An IDSelectorBitmap over `allowed` and the packed bits it reads in place (keep them alive)."""
    bits = np.zeros(int(allowed.max()) + 1, dtype=bool)
    bits[allowed] = True
    packed = np.packbits(bits, bitorder="little")
    return faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)), packed


def selector(how: str, allowed: np.ndarray) -> tuple[faiss.IDSelector, object]:
    if how == "bitmap":
        return bitmap_selector(allowed)
    return faiss.IDSelectorBatch(allowed), None


def recall(found: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(w)) / len(w) for f, w in zip(found, want, strict=True)]))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_exact_kinds_match_brute_force(kind: str) -> None:
    index, ids, vectors = built(kind)
    assert index.kind == kind and len(index) == len(ids)
    queries = unit_vectors(25, seed=1)
    scores, found = index.search(queries, k=10)
    want_scores, want_ids = brute_force(vectors, ids, queries, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_restricted_ivf_search_probes_every_list_so_it_is_exact() -> None:
    index, ids, vectors = built("ivf", ivf_nprobe=1, ann_target_recall=0.01)
    queries = unit_vectors(50, seed=2)
    _, want = brute_force(vectors, ids, queries, 10)
    _, unrestricted = index.search(queries, k=10)
    assert not np.array_equal(unrestricted, want)  # one probe of 16 lists misses neighbours...
    _, restricted = index.search(queries, k=10, selector=faiss.IDSelectorAll())
    np.testing.assert_array_equal(restricted, want)  # ...a restricted search does not


@pytest.mark.parametrize("how", ["bitmap", "batch"])
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_selector_keeps_only_allowed_ids_and_still_fills_k(kind: str, how: str) -> None:
    index, ids, vectors = built(kind, ivf_nprobe=1, ann_target_recall=0.01)
    query = unit_vectors(1, seed=3)
    # The 20 ids that score worst for the query: none is in the unrestricted top 5.
    allowed = ids[np.argsort(vectors @ query[0])[:20]]
    sel, _keep = selector(how, allowed)
    assert not np.isin(index.search(query, k=5)[1], allowed).any()
    inside = np.isin(ids, allowed)
    for k in (1, 5, 20):
        scores, found = index.search(query, k=k, selector=sel)
        want_scores, want_ids = brute_force(vectors[inside], ids[inside], query, k)
        np.testing.assert_array_equal(found, want_ids)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    scores, found = index.search(query, k=30, selector=sel)  # more than allowed: the rest are empty
    assert set(found[0, :20].tolist()) == set(allowed.tolist())
    assert (found[0, 20:] == -1).all() and np.isneginf(scores[0, 20:]).all()


@pytest.fixture(scope="module")
def hnsw() -> tuple[FaissIndex, np.ndarray, np.ndarray]:
    return built("hnsw", n=3000, seed=4)


@pytest.mark.parametrize("how", ["bitmap", "batch"])
def test_hnsw_selector_keeps_only_allowed_ids(
    how: str, hnsw: tuple[FaissIndex, np.ndarray, np.ndarray]
) -> None:
    index, ids, vectors = hnsw
    allowed = ids[::2]  # a broad filter: the graph walk finds enough of them
    sel, _keep = selector(how, allowed)
    queries = unit_vectors(50, seed=5)
    _, found = index.search(queries, k=10, selector=sel)
    assert np.isin(found, allowed).all()  # every slot filled, every id allowed
    inside = np.isin(ids, allowed)
    assert recall(found, brute_force(vectors[inside], ids[inside], queries, 10)[1]) >= 0.9
    _, none = index.search(queries, k=10, selector=faiss.IDSelectorBatch(np.array([1], np.int64)))
    assert (none == -1).all()  # id 1 is not stored


def test_hnsw_recall_against_brute_force(hnsw: tuple[FaissIndex, np.ndarray, np.ndarray]) -> None:
    index, ids, vectors = hnsw
    assert index.kind == "hnsw"
    queries = unit_vectors(100, seed=7)
    _, found = index.search(queries, k=10)
    assert (found != -1).all()
    assert recall(found, brute_force(vectors, ids, queries, 10)[1]) >= 0.9


def test_hnsw_near_total_k_scans_instead_of_walking_the_graph() -> None:
    # A sparse graph and a tiny ef: a plain graph walk for half of the vectors leaves slots empty.
    index, ids, vectors = built("hnsw", n=200, hnsw_m=4, hnsw_ef_search=8)
    queries = unit_vectors(20, seed=8)
    _, found = index.search(queries, k=100)
    _, want = brute_force(vectors, ids, queries, 100)
    assert [set(row) for row in found.tolist()] == [set(row) for row in want.tolist()]


@pytest.mark.parametrize("kind", KINDS)
def test_k_larger_than_count_returns_every_id_then_empty_slots(kind: str) -> None:
    index, ids, vectors = built(kind, n=200)
    assert index.kind == kind  # 200 vectors train 5 IVF lists
    queries = unit_vectors(3, seed=8)
    scores, found = index.search(queries, k=500)
    assert found.shape == scores.shape == (3, 500)
    want_scores, _ = brute_force(vectors, ids, queries, 200)
    for row_ids, row_scores, row_want in zip(found, scores, want_scores, strict=True):
        assert sorted(row_ids[:200].tolist()) == ids.tolist()
        assert (row_ids[200:] == -1).all() and np.isneginf(row_scores[200:]).all()
        np.testing.assert_allclose(row_scores[:200], row_want, atol=1e-5)  # all of them, best first


@pytest.mark.parametrize("kind", KINDS)
def test_ids_are_the_stored_labels_sorted(kind: str) -> None:
    rng = np.random.default_rng(9)
    ids = rng.choice(10**6, size=300, replace=False).astype(np.int64)  # unsorted, sparse
    index = build_index(DIM, index_settings(kind), ids, unit_vectors(300, seed=9))
    assert index.kind == kind and index.dimension == DIM and len(index) == 300
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


@pytest.mark.parametrize(("kind", "built_kind"), [("flat", "flat"), ("hnsw", "hnsw"), ("ivf", "flat")])
def test_empty_index_returns_only_empty_slots(kind: str, built_kind: str) -> None:
    empty = np.empty((0, DIM), dtype=np.float32)
    index = build_index(DIM, index_settings(kind), np.empty(0, np.int64), empty)
    assert index.kind == built_kind and len(index) == 0 and index.ids().size == 0
    scores, found = index.search(unit_vectors(2, seed=10), k=3)
    assert found.shape == (2, 3) and (found == -1).all() and np.isneginf(scores).all()
    scores, found = built(kind, n=100)[0].search(empty, k=3)  # no queries: no rows
    assert scores.shape == found.shape == (0, 3)


@pytest.mark.parametrize(
    ("kind", "count", "ann_min_vectors", "expected"),
    [
        ("auto", 99, 100, "flat"),  # below the threshold: exact
        ("auto", 100, 100, "ivf"),  # at it: clusters (100 // 39 = 2 lists)
        ("auto", 10**6, 150_000, "ivf"),
        ("auto", 77, 50, "flat"),  # past the threshold, but 77 vectors train only one list
        ("ivf", 77, 150_000, "flat"),
        ("ivf", 78, 150_000, "ivf"),
        ("ivf", 0, 150_000, "flat"),
        ("flat", 10**6, 1, "flat"),
        ("hnsw", 0, 150_000, "hnsw"),
        ("hnsw", 10**6, 1, "hnsw"),
    ],
)
def test_segment_kind(kind: str, count: int, ann_min_vectors: int, expected: str) -> None:
    settings = index_settings(kind, ann_min_vectors=ann_min_vectors, ivf_nlist=1024)
    assert segment_kind(count, settings) == expected


def test_auto_builds_ivf_from_ann_min_vectors() -> None:
    assert built("auto", n=200, ann_min_vectors=201)[0].kind == "flat"
    assert built("auto", n=200, ann_min_vectors=200)[0].kind == "ivf"


@pytest.mark.parametrize(
    ("count", "nlist", "expected"),
    [
        (0, 1024, 0),
        (77, 1024, 1),
        (1000, 1024, 25),  # 39 training points per list: 1000 // 39
        (10_000, 1024, 256),
        (40_000, 1024, 800),  # 4·sqrt(n) = 800 < 40000 // 39
        (10**6, 1024, 1024),  # the setting caps it
        (10_000, 8, 8),
    ],
)
def test_ivf_lists_caps(count: int, nlist: int, expected: int) -> None:
    assert ivf_lists(count, index_settings("ivf", ivf_nlist=nlist)) == expected


def test_built_ivf_uses_the_capped_list_count() -> None:
    index, _, _ = built("ivf", n=1000, ivf_nlist=1024)
    assert index.kind == "ivf"
    assert faiss.extract_index_ivf(index.faiss_index).nlist == 25


def test_ivf_probes_are_the_calibrated_ones_but_never_fewer_than_the_setting() -> None:
    ivf, _, _ = built("ivf", n=1000, ivf_nprobe=1, ann_target_recall=0.01)
    calibrated = faiss.extract_index_ivf(ivf.faiss_index).nprobe
    FaissIndex(ivf.faiss_index, index_settings("ivf", ivf_nprobe=calibrated + 2))
    assert faiss.extract_index_ivf(ivf.faiss_index).nprobe == calibrated + 2
    FaissIndex(ivf.faiss_index, index_settings("ivf", ivf_nprobe=1))
    assert faiss.extract_index_ivf(ivf.faiss_index).nprobe == calibrated + 2  # never lowered
    hnsw, _, _ = built("hnsw", n=100)
    FaissIndex(hnsw.faiss_index, index_settings("hnsw", hnsw_ef_search=77))
    inner = faiss.downcast_index(faiss.downcast_index(hnsw.faiss_index).index)
    assert inner.hnsw.efSearch == 77


def test_build_inputs_are_validated() -> None:
    settings = index_settings("flat")
    good = unit_vectors(2, seed=11)
    with pytest.raises(InputError, match="float32"):
        build_index(DIM, settings, np.arange(2), good.astype(np.float64))
    with pytest.raises(IndexMismatchError, match="dimension"):
        build_index(DIM, settings, np.arange(2), unit_vectors(2, seed=11, dim=DIM + 1))
    with pytest.raises(InputError, match="one id per vector"):
        build_index(DIM, settings, np.arange(3), good)
    with pytest.raises(InputError, match=">= 0"):
        build_index(DIM, settings, np.array([-1, 2]), good)
    with pytest.raises(InputError, match="1-D integer"):
        build_index(DIM, settings, np.array([0.5, 2.0]), good)
    with pytest.raises(InputError, match="duplicate"):
        build_index(DIM, settings, np.array([4, 4]), good)
    for bad in (np.nan, np.inf):
        vectors = good.copy()
        vectors[1, 3] = bad
        with pytest.raises(InputError, match="NaN"):
            build_index(DIM, settings, np.arange(2), vectors)


def test_search_inputs_are_validated() -> None:
    index, _, _ = built("flat", n=50)
    good = unit_vectors(2, seed=12)
    with pytest.raises(InputError, match="shape"):
        index.search(good[0], k=1)
    with pytest.raises(IndexMismatchError, match="dimension"):
        index.search(unit_vectors(2, seed=12, dim=DIM - 1), k=1)
    with pytest.raises(InputError, match="float32"):
        index.search(good.astype(np.float64), k=1)
    nan = good.copy()
    nan[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        index.search(nan, k=1)
    for k in (0, -1, MAX_K + 1):
        with pytest.raises(LimitError):
            index.search(good, k=k)
    assert index.search(good, k=MAX_K)[1].shape == (2, MAX_K)


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="this machine has a GPU")
def test_asking_for_an_absent_gpu_is_a_config_error() -> None:
    ids, vectors = np.arange(3, dtype=np.int64), unit_vectors(3, seed=13)
    with pytest.raises(ConfigError, match="USE_GPU"):
        build_index(DIM, IndexSettings(kind="flat", use_gpu=True), ids, vectors)
    # HNSW always searches on the CPU, so it does not need one.
    assert build_index(DIM, IndexSettings(kind="hnsw", use_gpu=True), ids, vectors).kind == "hnsw"


@pytest.mark.parametrize("target", [0.5, 0.95])
def test_ivf_probes_are_calibrated_at_build_to_reach_the_target_recall(target: float) -> None:
    index, _, vectors = built("ivf", n=4000, ivf_nlist=32, ivf_nprobe=1, ann_target_recall=target)
    nprobe = faiss.extract_index_ivf(index.faiss_index).nprobe
    assert 1 <= nprobe <= 32
    queries = vectors[
        ::40
    ]  # stored vectors as queries, as the calibration does: leave each one's own hit out
    scores, _ = index.search(queries, k=11)
    tenth = -np.partition(-(queries @ vectors.T), 10, axis=1)[:, 10:11]
    recall = float(np.mean(scores[:, 1:11] >= tenth - 1e-6))
    assert recall >= target - 0.1  # measured on other queries than the calibration's
    if target == 0.95:
        low, _, _ = built("ivf", n=4000, ivf_nlist=32, ivf_nprobe=1, ann_target_recall=0.5)
        assert nprobe > faiss.extract_index_ivf(low.faiss_index).nprobe  # more recall costs more probes
