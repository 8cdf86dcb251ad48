"""The index file format against real FAISS indexes in a temp dir: round trips, fixed bytes, refusals."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import faiss
import numpy as np
import pytest

from almanac.core.errors import IndexMismatchError
from almanac.core.index_file import FORMAT, IndexFile, index_kind, read_index_file, write_index_file

DIM = 8
SPECS = {"flat": "IDMap2,Flat", "hnsw": "IDMap2,HNSW8", "ivf": "IVF4,Flat"}


def filled(kind: str, n: int = 200) -> tuple[faiss.Index, np.ndarray]:
    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    index = faiss.index_factory(DIM, SPECS[kind], faiss.METRIC_INNER_PRODUCT)
    if kind == "ivf":
        index.train(vectors)
    index.add_with_ids(vectors, np.arange(n, dtype=np.int64) * 5)
    return index, vectors


def write_raw(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def meta_array(meta: object) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_round_trip_keeps_index_and_tombstones(kind: str, tmp_path: Path) -> None:
    index, vectors = filled(kind)
    tombstones = np.array([5, 40, 995], dtype=np.int64)
    path = tmp_path / "index.npz"
    digest = write_index_file(path, IndexFile(index, tombstones))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    stored = read_index_file(path, expected_sha256=digest.upper())  # hex case does not matter
    assert (index_kind(stored.index), stored.index.d, stored.index.ntotal) == (kind, DIM, index.ntotal)
    np.testing.assert_array_equal(stored.tombstones, tombstones)
    for got, want in zip(stored.index.search(vectors[:5], 4), index.search(vectors[:5], 4), strict=True):
        np.testing.assert_array_equal(got, want)


def test_same_index_gives_same_bytes_with_fixed_timestamps(tmp_path: Path) -> None:
    index, _ = filled("flat")
    first = write_index_file(tmp_path / "a.npz", IndexFile(index, np.empty(0, np.int64)))
    second = write_index_file(tmp_path / "b.npz", IndexFile(index, np.empty(0, np.int64)))
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert sorted(archive.namelist()) == ["index.npy", "meta.npy", "tombstones.npy"]
        meta = json.loads(np.load(io.BytesIO(archive.read("meta.npy"))).tobytes())
    assert meta == {"format": FORMAT, "kind": "flat", "dimension": DIM}


@pytest.mark.parametrize(
    "meta",
    [
        {"format": FORMAT + 1, "kind": "flat", "dimension": DIM},
        {"format": FORMAT, "kind": "hnsw", "dimension": DIM},
        {"format": FORMAT, "kind": "flat", "dimension": DIM + 1},
        ["not", "an", "object"],
    ],
)
def test_meta_that_disagrees_with_the_index_is_refused(meta: object, tmp_path: Path) -> None:
    index, _ = filled("flat")
    path = tmp_path / "index.npz"
    raw = faiss.serialize_index(index)
    write_raw(path, {"index": raw, "tombstones": np.empty(0, np.int64), "meta": meta_array(meta)})
    with pytest.raises(IndexMismatchError, match="inconsistent meta"):
        read_index_file(path)


def test_pickled_arrays_and_missing_members_are_refused(tmp_path: Path) -> None:
    index, _ = filled("flat")
    good = {"index": faiss.serialize_index(index), "meta": meta_array({"format": FORMAT})}
    pickled = tmp_path / "pickled.npz"
    write_raw(pickled, good | {"tombstones": np.array([{"boom": 1}], dtype=object)})
    with pytest.raises(IndexMismatchError, match="unreadable"):
        read_index_file(pickled)
    missing = tmp_path / "missing.npz"
    write_raw(missing, good)
    with pytest.raises(IndexMismatchError, match="unreadable"):
        read_index_file(missing)


def test_unknown_faiss_index_types_are_refused(tmp_path: Path) -> None:
    bare = faiss.IndexFlatIP(DIM)  # no id map: labels would be positions
    with pytest.raises(IndexMismatchError, match="unexpected FAISS index type"):
        index_kind(bare)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        write_index_file(tmp_path / "index.npz", IndexFile(bare, np.empty(0, np.int64)))
    assert not (tmp_path / "index.npz").exists()
