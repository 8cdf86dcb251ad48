"""The segment file format against real FAISS and bm25s indexes in a temp dir: round trips, fixed bytes,
refusals."""

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
from almanac.core.lexical_index import LexicalIndex
from almanac.core.segment_file import (
    FORMAT,
    SegmentFile,
    index_kind,
    read_segment_file,
    write_segment_file,
)

DIM = 8
N = 200
SPECS = {"flat": "IDMap2,Flat", "hnsw": "IDMap2,HNSW8", "ivf": "IVF4,Flat"}
WORDS = ["engine", "boat", "lake", "revenue", "oil", "winter", "path", "server"]


def filled(kind: str, n: int = N) -> tuple[faiss.Index, np.ndarray]:
    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    index = faiss.index_factory(DIM, SPECS[kind], faiss.METRIC_INNER_PRODUCT)
    if kind == "ivf":
        index.train(vectors)
    index.add_with_ids(vectors, np.arange(n, dtype=np.int64) * 5)
    return index, vectors


def lexical(n: int = N) -> LexicalIndex:
    texts = [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]} chunk{i}" for i in range(n)]
    return LexicalIndex.build([i * 5 for i in range(n)], texts)


def segment(kind: str) -> tuple[SegmentFile, np.ndarray]:
    index, vectors = filled(kind)
    return SegmentFile(index, lexical().to_arrays()), vectors


def write_raw(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def meta_array(meta: object) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def good_meta(count: int = N) -> dict[str, object]:
    return {"format": FORMAT, "kind": "flat", "dimension": DIM, "count": count}


def raw_members(count: int = N) -> dict[str, np.ndarray]:
    """The members of a valid flat segment file, for tests that spoil one of them."""
    index, _ = filled("flat")
    return {
        "index": faiss.serialize_index(index),
        "meta": meta_array(good_meta(count)),
        "lexical_ids": np.arange(N, dtype=np.int64) * 5,
    }


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_round_trip_keeps_index_and_lexical_arrays(kind: str, tmp_path: Path) -> None:
    contents, vectors = segment(kind)
    path = tmp_path / "segment.npz"
    digest = write_segment_file(path, contents)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    stored = read_segment_file(path, expected_sha256=digest.upper())  # hex case does not matter
    index = contents.index
    assert (index_kind(stored.index), stored.index.d, stored.index.ntotal) == (kind, DIM, index.ntotal)
    for got, want in zip(stored.index.search(vectors[:5], 4), index.search(vectors[:5], 4), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(stored.lexical) == sorted(contents.lexical)
    for name, array in contents.lexical.items():
        assert stored.lexical[name].dtype == array.dtype, name
        np.testing.assert_array_equal(stored.lexical[name], array, err_msg=name)
    loaded = LexicalIndex.from_arrays(stored.lexical)
    for query in ("engine oil", "chunk17", "lake server"):
        assert loaded.search(query, k=10) == lexical().search(query, k=10)
    assert write_segment_file(tmp_path / "again.npz", stored) == digest  # read, write: same bytes


def test_same_segment_gives_same_bytes_with_fixed_timestamps(tmp_path: Path) -> None:
    contents, _ = segment("flat")
    first = write_segment_file(tmp_path / "a.npz", contents)
    second = write_segment_file(tmp_path / "b.npz", contents)
    assert first == second
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert sorted(archive.namelist()) == sorted(
            ["index.npy", "meta.npy"] + [f"{name}.npy" for name in contents.lexical]
        )
        meta = json.loads(np.load(io.BytesIO(archive.read("meta.npy"))).tobytes())
    assert meta == good_meta()
    other, _ = filled("flat", n=N - 1)
    changed = SegmentFile(other, lexical(N - 1).to_arrays())
    assert write_segment_file(tmp_path / "c.npz", changed) != first


def test_termless_segment_round_trips(tmp_path: Path) -> None:
    index, _ = filled("flat", n=2)
    arrays = LexicalIndex.build([0, 5], ["the and", "   "]).to_arrays()
    assert sorted(arrays) == ["lexical_ids"]
    digest = write_segment_file(tmp_path / "s.npz", SegmentFile(index, arrays))
    stored = read_segment_file(tmp_path / "s.npz", digest)
    assert sorted(stored.lexical) == ["lexical_ids"] and stored.index.ntotal == 2


@pytest.mark.parametrize(
    "meta",
    [
        good_meta() | {"format": FORMAT + 1},
        good_meta() | {"format": 1},
        good_meta() | {"kind": "hnsw"},
        good_meta() | {"dimension": DIM + 1},
        good_meta() | {"count": N + 1},
        {"format": FORMAT, "kind": "flat", "dimension": DIM},  # format 1 had no count
        ["not", "an", "object"],
    ],
)
def test_meta_that_disagrees_with_the_contents_is_refused(meta: object, tmp_path: Path) -> None:
    path = tmp_path / "segment.npz"
    write_raw(path, raw_members() | {"meta": meta_array(meta)})
    with pytest.raises(IndexMismatchError, match="inconsistent meta"):
        read_segment_file(path)


def test_valid_raw_members_are_accepted(tmp_path: Path) -> None:
    # The refusal tests below spoil one member of this file; unspoiled, it reads.
    path = tmp_path / "segment.npz"
    write_raw(path, raw_members())
    assert read_segment_file(path).index.ntotal == N


def test_lexical_ids_that_disagree_with_the_index_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "segment.npz"
    write_raw(path, raw_members() | {"lexical_ids": np.arange(N - 1, dtype=np.int64)})
    with pytest.raises(IndexMismatchError, match="inconsistent"):
        read_segment_file(path)


@pytest.mark.parametrize("member", ["meta", "lexical_ids", "lexical_data"])
def test_pickled_arrays_are_refused(member: str, tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    write_raw(path, raw_members() | {member: np.array([{"boom": 1}], dtype=object)})
    with pytest.raises(IndexMismatchError, match="unreadable"):
        read_segment_file(path)


@pytest.mark.parametrize(
    ("member", "message"),
    [("index", "unreadable"), ("meta", "unreadable"), ("lexical_ids", "inconsistent")],
)
def test_missing_members_are_refused(member: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "missing.npz"
    members = raw_members()
    del members[member]
    write_raw(path, members)
    with pytest.raises(IndexMismatchError, match=message):
        read_segment_file(path)


@pytest.mark.parametrize("spec", ["Flat", "HNSW8", "IDMap,Flat", "IDMap2,SQ8", "IVF4,SQ8", "IVF4,PQ2"])
def test_unknown_faiss_index_types_are_refused(spec: str, tmp_path: Path) -> None:
    other = faiss.index_factory(DIM, spec, faiss.METRIC_INNER_PRODUCT)  # e.g. no id map: labels = positions
    with pytest.raises(IndexMismatchError, match="unexpected FAISS index type"):
        index_kind(other)
    empty = {"lexical_ids": np.empty(0, np.int64)}
    with pytest.raises(IndexMismatchError, match="rebuild"):
        write_segment_file(tmp_path / "segment.npz", SegmentFile(other, empty))
    assert not (tmp_path / "segment.npz").exists()
    raw = {"index": faiss.serialize_index(other), "meta": meta_array(good_meta(0))} | empty
    write_raw(tmp_path / "raw.npz", raw)
    with pytest.raises(IndexMismatchError, match="unexpected FAISS index type"):
        read_segment_file(tmp_path / "raw.npz")


def test_reserved_lexical_names_are_refused(tmp_path: Path) -> None:
    index, _ = filled("flat")
    for name in ("index", "meta"):
        with pytest.raises(ValueError, match="may not be named"):
            write_segment_file(tmp_path / "s.npz", SegmentFile(index, {name: np.zeros(1)}))


def test_wrong_checksum_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    contents, _ = segment("flat")
    path = tmp_path / "segment.npz"
    digest = write_segment_file(path, contents)
    with pytest.raises(IndexMismatchError, match="sha256"):
        read_segment_file(path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match="sha256"):
        read_segment_file(flipped, expected_sha256=digest)
    with pytest.raises(IndexMismatchError, match="unreadable"):
        read_segment_file(flipped)  # the zip CRC catches the flip even without a checksum
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(IndexMismatchError, match="unreadable"):
        read_segment_file(truncated)
    with pytest.raises(IndexMismatchError, match="cannot read"):
        read_segment_file(tmp_path / "missing.npz")
