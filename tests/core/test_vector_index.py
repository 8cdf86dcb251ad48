"""FaissIndex against real FAISS, checked with numpy brute force as the oracle."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import faiss
import numpy as np
import pytest

from almanac.core.errors import ConfigError, IndexMismatchError, InputError, LimitError
from almanac.core.settings import IndexSettings
from almanac.core.vector_index import FaissIndex, build_index

DIM = 32
KINDS = ["flat", "hnsw", "ivf"]


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def index_settings(kind: str, **overrides: object) -> IndexSettings:
    # nprobe == nlist makes IVF exhaustive, so its results can be compared exactly with brute force.
    values: dict[str, object] = {"kind": kind, "ivf_nlist": 16, "ivf_nprobe": 16, "use_gpu": False}
    return IndexSettings(**(values | overrides))


def brute_force(
    base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ base.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def built(kind: str, n: int = 1000, seed: int = 0) -> tuple[FaissIndex, np.ndarray, np.ndarray]:
    ids = np.arange(n, dtype=np.int64) * 3 + 11  # sparse ids: labels are not positions
    vectors = unit_vectors(n, seed)
    return build_index(DIM, index_settings(kind), ids, vectors), ids, vectors


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_exact_kinds_match_brute_force(kind: str) -> None:
    index, ids, vectors = built(kind)
    assert index.kind == kind
    queries = unit_vectors(25, seed=1)
    scores, found = index.search(queries, k=10)
    want_scores, want_ids = brute_force(vectors, ids, queries, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_removed_ids_never_come_back(kind: str) -> None:
    index, ids, vectors = built(kind)
    rng = np.random.default_rng(2)
    gone = rng.choice(ids, size=300, replace=False)
    index.remove(np.concatenate([gone, np.array([1, 2, 10**9])]))  # unknown ids are ignored
    live = np.setdiff1d(ids, gone)
    assert len(index) == len(live)
    np.testing.assert_array_equal(index.ids(), live)
    # Removed vectors as queries: each would be its own best hit if it were still there.
    _, found = index.search(vectors[np.isin(ids, gone)], k=20)
    assert not np.isin(found, gone).any()
    assert (found != -1).all()
    # A live vector still finds itself first.
    _, found = index.search(vectors[np.isin(ids, live)][:20], k=1)
    np.testing.assert_array_equal(found[:, 0], live[:20])


@pytest.mark.parametrize("kind", KINDS)
def test_k_larger_than_live_count_returns_every_live_id_then_empty_slots(kind: str) -> None:
    index, ids, _ = built(kind, n=200)
    index.remove(ids[:50])
    scores, found = index.search(unit_vectors(3, seed=3), k=500)
    assert found.shape == scores.shape == (3, 500)
    for row_ids, row_scores in zip(found, scores, strict=True):
        assert set(row_ids[:150].tolist()) == set(ids[50:].tolist())
        assert (row_ids[150:] == -1).all() and np.isneginf(row_scores[150:]).all()
        assert (np.diff(row_scores[:150]) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind", KINDS)
def test_empty_index_returns_only_empty_slots(kind: str) -> None:
    index = FaissIndex(DIM, index_settings(kind))
    scores, found = index.search(unit_vectors(2, seed=4), k=3)
    assert len(index) == 0 and (found == -1).all() and np.isneginf(scores).all()
    assert index.ids().size == 0


def test_hnsw_recall_against_brute_force_with_tombstones() -> None:
    index, ids, vectors = built("hnsw", n=5000, seed=5)
    queries = unit_vectors(100, seed=6)
    for step in ("fresh", "with tombstones"):
        live = np.isin(ids, index.ids())
        _, want = brute_force(vectors[live], ids[live], queries, 10)
        _, found = index.search(queries, k=10)
        assert (found != -1).all(), step
        recall = np.mean([len(set(f) & set(w)) / 10 for f, w in zip(found, want, strict=True)])
        assert recall >= 0.9, f"{step}: recall@10 {recall:.3f}"
        index.remove(ids[::10])


def test_ivf_with_few_vectors_falls_back_to_exact_flat(caplog: pytest.LogCaptureFixture) -> None:
    ids, vectors = np.arange(20, dtype=np.int64), unit_vectors(20, seed=7)
    with caplog.at_level(logging.INFO, logger="almanac.core.vector_index"):
        index = build_index(DIM, index_settings("ivf"), ids, vectors)
    assert index.kind == "flat"
    assert "index_fallback wanted=ivf kind=flat" in caplog.text
    _, found = index.search(vectors[:5], k=3)
    np.testing.assert_array_equal(found, brute_force(vectors, ids, vectors[:5], 3)[1])
    assert not index.needs_rebuild()
    index.add(np.arange(20, 100, dtype=np.int64), unit_vectors(80, seed=8))
    assert index.needs_rebuild() and "train ivf" in str(index.rebuild_reason())


def test_ivf_caps_lists_by_training_points(caplog: pytest.LogCaptureFixture) -> None:
    ids, vectors = np.arange(1000, dtype=np.int64), unit_vectors(1000, seed=9)
    with caplog.at_level(logging.INFO, logger="almanac.core.vector_index"):
        index = build_index(DIM, index_settings("ivf", ivf_nlist=1024), ids, vectors)
    assert index.kind == "ivf" and "nlist=25" in caplog.text  # 1000 // 39
    assert not index.needs_rebuild()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    index, ids, _ = built(kind)
    index.remove(ids[:40])
    path = tmp_path / "index.npz"
    digest = index.save(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = FaissIndex.load(path, index_settings(kind), expected_sha256=digest)
    queries = unit_vectors(30, seed=10)
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    assert (loaded.kind, loaded.dimension, len(loaded)) == (index.kind, DIM, len(index))
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    assert loaded.tombstone_ratio == index.tombstone_ratio
    assert loaded.save(tmp_path / "again.npz") == digest  # same index, same bytes


def test_wrong_checksum_and_corrupt_files_raise(tmp_path: Path) -> None:
    index, _, _ = built("flat", n=100)
    path = tmp_path / "index.npz"
    digest = index.save(path)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        FaissIndex.load(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="sha256"):
        FaissIndex.load(flipped, expected_sha256=digest)
    with pytest.raises(IndexMismatchError):
        FaissIndex.load(flipped)  # zip CRC catches the flip even without a checksum
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(IndexMismatchError, match="unreadable"):
        FaissIndex.load(truncated)
    with pytest.raises(IndexMismatchError):
        FaissIndex.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("kind", KINDS)
def test_copy_is_independent(kind: str) -> None:
    index, ids, vectors = built(kind, n=300)
    queries = vectors[:10]
    before = index.search(queries, 5)
    clone = index.copy()
    clone.remove(ids[:10])
    clone.add(np.array([10**6], dtype=np.int64), unit_vectors(1, seed=11))
    assert len(index) == 300 and len(clone) == 291
    np.testing.assert_array_equal(index.ids(), np.sort(ids))
    for got, want in zip(index.search(queries, 5), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.isin(clone.search(queries, 5)[1], ids[:10]).any()


def test_tombstone_ratio_triggers_rebuild() -> None:
    index, ids, _ = built("hnsw", n=200)
    index.remove(ids[:30])
    assert index.tombstone_ratio == pytest.approx(0.15) and not index.needs_rebuild()
    index.remove(ids[:30])  # removing twice counts once
    assert index.tombstone_ratio == pytest.approx(0.15)
    index.remove(ids[30:50])
    assert index.tombstone_ratio == pytest.approx(0.25) and index.needs_rebuild()
    flat, flat_ids, _ = built("flat", n=200)
    flat.remove(flat_ids[:100])
    assert flat.tombstone_ratio == 0.0 and not flat.needs_rebuild()


def test_hnsw_refuses_to_reuse_a_tombstoned_id() -> None:
    index, ids, vectors = built("hnsw", n=100)
    index.remove(ids[:1])
    with pytest.raises(InputError, match="rebuild"):
        index.add(ids[:1], vectors[:1])


def test_changed_kind_in_settings_asks_for_rebuild(tmp_path: Path) -> None:
    index, _, _ = built("flat", n=100)
    index.save(tmp_path / "index.npz")
    loaded = FaissIndex.load(tmp_path / "index.npz", index_settings("hnsw"))
    assert loaded.kind == "flat" and "settings ask for hnsw" in str(loaded.rebuild_reason())


def test_inputs_are_validated() -> None:
    index = FaissIndex(DIM, index_settings("flat"))
    good = unit_vectors(2, seed=12)
    with pytest.raises(InputError, match="float32"):
        index.add(np.arange(2), good.astype(np.float64))
    with pytest.raises(IndexMismatchError, match="dimension"):
        index.add(np.arange(2), unit_vectors(2, seed=12, dim=DIM + 1))
    with pytest.raises(InputError, match="shape"):
        index.search(good[0], k=1)
    with pytest.raises(InputError, match="one id per vector"):
        index.add(np.arange(3), good)
    with pytest.raises(InputError, match=">= 0"):
        index.add(np.array([-1, 2]), good)
    with pytest.raises(InputError, match="duplicate"):
        index.add(np.array([4, 4]), good)
    index.add(np.array([4, 5]), good)
    with pytest.raises(InputError, match="already in the index"):
        index.add(np.array([5]), good[:1])
    with pytest.raises(LimitError):
        index.search(good, k=0)


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="this machine has a GPU")
def test_asking_for_an_absent_gpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="USE_GPU"):
        FaissIndex(DIM, IndexSettings(use_gpu=True))
