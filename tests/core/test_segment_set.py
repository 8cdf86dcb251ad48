"""SegmentSet over several real segments (FAISS + bm25s), checked against numpy brute force over live ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from almanac.core.errors import IndexMismatchError
from almanac.core.lexical_index import tokenize
from almanac.core.segment_set import Segment, SegmentSet
from almanac.core.settings import IndexSettings

DIM = 16
FLAT = IndexSettings(kind="flat", use_gpu=False)
WORDS = ["engine", "boat", "lake", "revenue", "oil", "winter", "server", "garden", "piano", "river"]


def unit_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def unique_term(chunk_id: int) -> str:
    """A term only this chunk has: letters only, so the tokenizer keeps it whole and splits off nothing."""
    letters = ""
    while True:
        chunk_id, digit = divmod(chunk_id, 26)
        letters += chr(ord("a") + digit)
        if not chunk_id:
            return f"zq{letters}"


def text(chunk_id: int, rng: np.random.Generator) -> str:
    words = rng.choice(WORDS, size=int(rng.integers(2, 6))).tolist()
    return " ".join([*words, unique_term(chunk_id)])  # every chunk has a term of its own


@dataclass
class Corpus:
    """Chunks split over segments: ids, vectors and texts by id, and the segments built from them."""

    ids: np.ndarray
    vectors: dict[int, np.ndarray]
    texts: dict[int, str]
    segments: list[Segment]

    def matrix(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.vectors[int(i)] for i in ids]) if len(ids) else np.empty((0, DIM), np.float32)


def corpus(sizes: tuple[int, ...] = (120, 80, 50), settings: IndexSettings = FLAT, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * sum(sizes), size=sum(sizes), replace=False).astype(np.int64)  # interleaved
    vectors = unit_vectors(len(ids), seed)
    texts = {int(i): text(int(i), rng) for i in ids}
    segments, start = [], 0
    for number, size in enumerate(sizes):
        part, part_vectors = ids[start : start + size], vectors[start : start + size]
        part_texts = [texts[int(i)] for i in part]
        segments.append(Segment.build(f"s{number}", DIM, settings, part, part_vectors, part_texts))
        start += size
    return Corpus(np.sort(ids), dict(zip(ids.tolist(), vectors, strict=True)), texts, segments)


@pytest.fixture(scope="module")
def data() -> Corpus:
    return corpus()


def brute_force(data: Corpus, live: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and ids of the k best `live` ids, padded with -inf / -1 like a search."""
    scores = queries @ data.matrix(live).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    pad = max(0, k - len(live))
    best = np.pad(np.take_along_axis(scores, order, axis=1), ((0, 0), (0, pad)), constant_values=-np.inf)
    return best, np.pad(live[order], ((0, 0), (0, pad)), constant_values=-1)


def deletions(data: Corpus, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(data.ids, size=count, replace=False)


def assert_search_equals(found: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(found[1], want[1])
    np.testing.assert_allclose(found[0], want[0], atol=1e-5)


def test_segments_hold_their_chunks_sorted(data: Corpus) -> None:
    assert [len(s.ids) for s in data.segments] == [120, 80, 50]
    for segment in data.segments:
        assert (np.diff(segment.ids) > 0).all()
        np.testing.assert_array_equal(segment.index.ids(), segment.ids)
        # vectors travelled with their ids through the sort: each finds itself first
        _, found = segment.index.search(data.matrix(segment.ids), k=1)
        np.testing.assert_array_equal(found[:, 0], segment.ids)


@pytest.mark.parametrize("k", [1, 5, "all"])
@pytest.mark.parametrize("deleted_count", [0, 60])
def test_dense_search_equals_brute_force_over_live_ids(
    data: Corpus, k: int | str, deleted_count: int
) -> None:
    deleted = deletions(data, deleted_count, seed=1)
    live_set = SegmentSet(data.segments, deleted=np.concatenate([deleted, [10**7]]))  # unknown: ignored
    live = np.setdiff1d(data.ids, deleted)
    top = len(live) + 3 if k == "all" else int(k)
    # deleted vectors as queries: each would be its own best hit if it were still there
    queries = np.concatenate([unit_vectors(10, seed=2), data.matrix(deleted[:10])])
    found = live_set.search(queries, top)
    assert_search_equals(found, brute_force(data, live, queries, top))
    assert not np.isin(found[1], deleted).any()


@pytest.mark.parametrize("k", [1, 5, 15, 40])
def test_allowed_returns_exactly_the_best_allowed_live_ids(data: Corpus, k: int) -> None:
    deleted = deletions(data, 40, seed=3)
    live_set = SegmentSet(data.segments, deleted=deleted)
    live = np.setdiff1d(data.ids, deleted)
    query = unit_vectors(1, seed=4)
    # The 15 live ids that score worst: the unrestricted top k holds none of them.
    worst = live[np.argsort(data.matrix(live) @ query[0])[:15]]
    assert not np.isin(live_set.search(query, k)[1], worst).any()
    allowed = np.concatenate([worst, deleted[:10], [10**7, 10**8]])  # deleted and unknown ids stay out
    found = live_set.search(query, k, allowed=allowed)
    assert_search_equals(found, brute_force(data, np.sort(worst), query, k))
    assert (found[1] != -1).sum() == min(k, 15)


def test_allowed_with_no_live_id_finds_nothing(data: Corpus) -> None:
    deleted = data.ids[:5]
    live_set = SegmentSet(data.segments, deleted=deleted)
    queries = unit_vectors(3, seed=5)
    for allowed in (np.empty(0, np.int64), deleted, np.array([10**7])):
        scores, found = live_set.search(queries, 4, allowed=allowed)
        assert (found == -1).all() and np.isneginf(scores).all()
        assert live_set.search_lexical("engine boat lake", 4, allowed=allowed) == []


def matching(data: Corpus, term: str, among: np.ndarray) -> set[int]:
    return {int(i) for i in among if term in tokenize(data.texts[int(i)])}


def test_lexical_search_finds_a_unique_term_and_never_a_deleted_chunk(data: Corpus) -> None:
    deleted = deletions(data, 60, seed=6)
    live_set = SegmentSet(data.segments, deleted=deleted)
    live = np.setdiff1d(data.ids, deleted)
    for chunk_id in live[:10]:
        assert [c for c, _ in live_set.search_lexical(unique_term(int(chunk_id)), k=3)] == [chunk_id]
    for chunk_id in deleted[:10]:
        assert live_set.search_lexical(unique_term(int(chunk_id)), k=3) == []
    for word in WORDS:
        everyone = live_set.search_lexical(word, k=len(data.ids))
        assert {chunk_id for chunk_id, _ in everyone} == matching(data, word, live)
        scores = [score for _, score in everyone]
        assert scores == sorted(scores, reverse=True)
        few = live_set.search_lexical(word, k=5)
        assert len(few) == min(5, len(everyone)) and not np.isin([c for c, _ in few], deleted).any()


def test_lexical_search_with_allowed_keeps_k_hits(data: Corpus) -> None:
    deleted = deletions(data, 30, seed=7)
    live_set = SegmentSet(data.segments, deleted=deleted)
    live = np.setdiff1d(data.ids, deleted)
    word = "engine"
    holders = sorted(matching(data, word, live))
    unfiltered = [chunk_id for chunk_id, _ in live_set.search_lexical(word, k=5)]
    # allowed: live chunks with the word that the unrestricted top 5 leaves out, plus deleted ones
    allowed_live = [c for c in holders if c not in unfiltered][:12]
    allowed = np.array([*allowed_live, *deleted[:10]])
    for k in (1, 5, 12, 50):
        found = [chunk_id for chunk_id, _ in live_set.search_lexical(word, k, allowed=allowed)]
        assert len(found) == min(k, len(allowed_live))
        assert set(found) <= set(allowed_live)
    everyone = live_set.search_lexical(word, k=50, allowed=allowed)
    assert {chunk_id for chunk_id, _ in everyone} == set(allowed_live)


def test_with_changes_shares_unchanged_segments(data: Corpus) -> None:
    first_deleted = data.segments[1].ids[:3]
    before = SegmentSet(data.segments, deleted=first_deleted)
    new_ids = np.array([10**6, 10**6 + 1], dtype=np.int64)
    new_vectors = unit_vectors(2, seed=8)
    added = Segment.build("s9", DIM, FLAT, new_ids, new_vectors, ["fresh zqnew", "fresh"])
    more_deleted = data.segments[2].ids[:4]
    after = before.with_changes([added], {"s0"}, np.concatenate([first_deleted, more_deleted]))
    assert after.names() == {"s1", "s2", "s9"} and before.names() == {"s0", "s1", "s2"}
    by_name = {s.name: s for s in after.segments}
    assert by_name["s1"] is data.segments[1] and by_name["s2"] is data.segments[2]
    assert by_name["s9"] is added
    want = np.setdiff1d(
        np.concatenate([data.segments[1].ids, data.segments[2].ids, new_ids]),
        np.concatenate([first_deleted, more_deleted]),
    )
    np.testing.assert_array_equal(after.ids(), want)
    assert len(after) == len(want)
    np.testing.assert_array_equal(before.ids(), np.setdiff1d(data.ids, first_deleted))  # unchanged
    _, found = after.search(data.matrix(more_deleted), k=3)
    assert not np.isin(found, more_deleted).any()
    _, found = after.search(new_vectors, k=1)
    np.testing.assert_array_equal(found[:, 0], new_ids)
    assert after.search_lexical("zqnew", k=2)[0][0] == 10**6
    gone = data.segments[0].ids[0]
    assert not np.isin(after.search(data.matrix(data.segments[0].ids), k=5)[1], data.segments[0].ids).any()
    assert after.search_lexical(unique_term(int(gone)), k=1) == []


def test_len_and_ids_count_only_live_stored_chunks(data: Corpus) -> None:
    full = SegmentSet(data.segments)
    assert len(full) == len(data.ids) == 250
    np.testing.assert_array_equal(full.ids(), data.ids)
    deleted = np.concatenate([data.ids[:7], data.ids[:2], [10**7, 10**8]])  # repeats and unknown ids
    live_set = SegmentSet(data.segments, deleted=deleted)
    assert len(live_set) == 243
    np.testing.assert_array_equal(live_set.ids(), data.ids[7:])


def test_empty_sets_and_empty_segments_find_nothing() -> None:
    empty_segment = Segment.build("e", DIM, FLAT, np.empty(0, np.int64), np.empty((0, DIM), np.float32), [])
    queries = unit_vectors(2, seed=9)
    for segments in ([], [empty_segment]):
        live_set = SegmentSet(segments, deleted=np.array([3]))
        assert len(live_set) == 0 and live_set.ids().size == 0
        scores, found = live_set.search(queries, 4)
        assert found.shape == (2, 4) and (found == -1).all() and np.isneginf(scores).all()
        assert live_set.search_lexical("engine", 4) == []
    one = Segment.build("one", DIM, FLAT, np.array([5]), queries[:1], ["engine"])
    mixed = SegmentSet([empty_segment]).with_changes([one], set(), np.empty(0, np.int64))
    assert mixed.search(queries[:1], 2)[1].tolist() == [[5, -1]]
    assert [chunk_id for chunk_id, _ in mixed.search_lexical("engine", 2)] == [5]


def test_segment_save_load_round_trip(data: Corpus, tmp_path: Path) -> None:
    segment = data.segments[0]
    path = tmp_path / "s0.npz"
    digest = segment.save(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = Segment.load("s0", path, FLAT, checksum=digest)
    assert loaded.name == "s0" and loaded.index.kind == segment.index.kind
    np.testing.assert_array_equal(loaded.ids, segment.ids)
    queries = unit_vectors(5, seed=10)
    for got, want in zip(loaded.index.search(queries, 7), segment.index.search(queries, 7), strict=True):
        np.testing.assert_array_equal(got, want)
    for word in [*WORDS[:3], unique_term(int(segment.ids[3]))]:
        assert loaded.lexical.search(word, 10) == segment.lexical.search(word, 10)
    assert loaded.save(tmp_path / "again.npz") == digest


def test_altered_or_missing_segment_files_are_refused(data: Corpus, tmp_path: Path) -> None:
    path = tmp_path / "s1.npz"
    digest = data.segments[1].save(path)
    with pytest.raises(IndexMismatchError, match="sha256"):
        Segment.load("s1", path, FLAT, checksum="f" * 64)
    corrupted = bytearray(path.read_bytes())
    corrupted[len(corrupted) // 3] ^= 0x01
    path.write_bytes(bytes(corrupted))
    with pytest.raises(IndexMismatchError, match="sha256"):
        Segment.load("s1", path, FLAT, checksum=digest)
    with pytest.raises(IndexMismatchError):
        Segment.load("s1", path, FLAT, checksum=None)
    with pytest.raises(IndexMismatchError):
        Segment.load("s1", tmp_path / "missing.npz", FLAT, checksum=digest)


def test_ivf_segment_restricted_search_is_exact() -> None:
    settings = IndexSettings(kind="ivf", ivf_nlist=8, ivf_nprobe=1, ann_target_recall=0.01, use_gpu=False)
    big = corpus(sizes=(2000, 60), settings=settings, seed=11)
    assert [s.index.kind for s in big.segments] == ["ivf", "flat"]  # 60 vectors train one list: flat
    queries = unit_vectors(20, seed=12)
    _, unrestricted = SegmentSet(big.segments).search(queries, 10)
    assert not np.array_equal(unrestricted, brute_force(big, big.ids, queries, 10)[1])  # one probe of 8
    deleted = deletions(big, 100, seed=13)
    live_set = SegmentSet(big.segments, deleted=deleted)
    live = np.setdiff1d(big.ids, deleted)
    assert_search_equals(live_set.search(queries, 10), brute_force(big, live, queries, 10))
    allowed = live[::7]
    found = live_set.search(queries, 10, allowed=np.concatenate([allowed, deleted]))
    assert_search_equals(found, brute_force(big, allowed, queries, 10))


def test_hnsw_segments_never_return_deleted_ids() -> None:
    settings = IndexSettings(kind="hnsw", hnsw_m=8, use_gpu=False)
    small = corpus(sizes=(300, 200), settings=settings, seed=14)
    assert {s.index.kind for s in small.segments} == {"hnsw"}
    deleted = deletions(small, 100, seed=15)
    live_set = SegmentSet(small.segments, deleted=deleted)
    _, found = live_set.search(small.matrix(deleted), 10)
    assert (found != -1).all() and not np.isin(found, deleted).any()
    live = np.setdiff1d(small.ids, deleted)
    _, found = live_set.search(small.matrix(live[:50]), 1)
    np.testing.assert_array_equal(found[:, 0], live[:50])  # a live vector finds itself


def test_a_rare_term_in_a_small_new_segment_outranks_partial_matches_in_a_big_one() -> None:
    """Term statistics are summed over segments: the one chunk holding a rare term ranks first, as it does
    in one BM25 index over the whole collection (per-segment IDF would bury it under the big segment)."""
    from almanac.core.lexical_index import LexicalIndex

    texts = [f"shipment {i} weight {i % 500}" for i in range(2000)]
    new = "shipment 4242 weight 17 note zqupdate4061f198"
    settings = IndexSettings(kind="flat")
    big = Segment.build("big", 4, settings, np.arange(2000), np.ones((2000, 4), np.float32), texts)
    small = Segment.build("new", 4, settings, np.array([5000]), np.ones((1, 4), np.float32), [new])
    whole = LexicalIndex.build([*range(2000), 5000], [*texts, new])
    query = "zqupdate4061f198"
    assert big.lexical.search(query, 1)[0][0] != 5000  # the digits match old rows
    assert whole.search(query, 1)[0][0] == 5000
    assert SegmentSet([big, small]).search_lexical(query, 1)[0][0] == 5000
    one = SegmentSet(
        [Segment.build("one", 4, settings, np.arange(2000), np.ones((2000, 4), np.float32), texts)]
    )
    assert one.search_lexical("weight 17", 5) == big.lexical.search("weight 17", 5)  # one segment: unchanged
