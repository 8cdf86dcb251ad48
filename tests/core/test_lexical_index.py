"""LexicalIndex (BM25 via bm25s) on small hand-built corpora."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from almanac.core.errors import IndexMismatchError, InputError
from almanac.core.lexical_index import TOKENIZER_VERSION, LexicalIndex, tokenize

# Ids are deliberately not positions, so a wrong id mapping shows.
CORPUS = {
    101: "The red car has a powerful engine and red seats.",
    7: "A blue boat sails across the quiet lake at dawn.",
    55: "Engines need oil; the mechanic checked the engine oil twice.",
    230: "Quarterly revenue grew while costs stayed flat.",
    12: "The lake froze early this winter, and the boat stayed ashore.",
}
CODE = {
    1: "To build a path, call os.path.join(base, name) instead of string concatenation.",
    2: "The path of the request is joined to the base URL; see join and path helpers.",
    3: "Every package needs an __init__ module so Python can import it.",
    4: "Initialise the settings before you init the server; init runs once.",
    5: "FaissIndex wraps an HNSW graph; the index keeps tombstones.",
}


def build(corpus: dict[int, str]) -> LexicalIndex:
    return LexicalIndex.build(list(corpus), list(corpus.values()))


def test_tokenize_keeps_identifiers_and_drops_stopwords() -> None:
    terms = tokenize("The os.path.join call in __init__ of HTTPServer")
    assert {"os.path.join", "os", "path", "join", "__init__", "init", "httpserver", "http", "server"} <= set(
        terms
    )
    assert not {"the", "in", "of"} & set(terms)
    assert tokenize("Café au lait") == ["café", "au", "lait"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("powerful", 101), ("sails", 7), ("mechanic", 55), ("revenue", 230), ("froze", 12)],
)
def test_a_term_found_in_one_document_returns_only_that_document(query: str, expected: int) -> None:
    results = build(CORPUS).search(query, k=5)
    assert [chunk_id for chunk_id, _ in results] == [expected]
    assert results[0][1] > 0


def test_ranking_follows_term_frequency_and_rarity() -> None:
    index = build(CORPUS)
    results = index.search("engine oil", k=5)
    assert [chunk_id for chunk_id, _ in results] == [55, 101]  # oil is rarer; 55 has both terms
    scores = [score for _, score in index.search("boat lake", k=5)]
    assert scores == sorted(scores, reverse=True) and all(score > 0 for score in scores)


@pytest.mark.parametrize(("query", "expected"), [("os.path.join", 1), ("__init__", 3), ("FaissIndex", 5)])
def test_exact_identifier_query_ranks_its_chunk_first(query: str, expected: int) -> None:
    results = build(CODE).search(query, k=5)
    assert results[0][0] == expected
    assert len(results) == 1 or results[0][1] > results[1][1]


def test_k_limits_results_and_may_exceed_the_corpus() -> None:
    index = build(CORPUS)
    assert len(index.search("the lake boat engine red", k=2)) == 2
    assert {chunk_id for chunk_id, _ in index.search("lake boat engine red", k=50)} == {101, 7, 55, 12}
    with pytest.raises(InputError):
        index.search("lake", k=0)


ROUND_TRIP_QUERIES = ["engine oil", "os.path.join", "boat lake", "init", "nothing matches xyzzy"]


def test_arrays_round_trip_gives_the_same_results() -> None:
    index = build(CORPUS | CODE)
    arrays = index.to_arrays()
    assert {name: array.dtype.kind for name, array in arrays.items()} == {
        "lexical_ids": "i",
        "lexical_data": "f",
        "lexical_indices": "i",
        "lexical_indptr": "i",
        "lexical_vocab": "u",
    }  # plain arrays: they are stored without pickle
    loaded = LexicalIndex.from_arrays(arrays)
    assert len(loaded) == len(index) == 10
    np.testing.assert_array_equal(loaded.ids(), list(CORPUS | CODE))
    mask = np.ones(len(index), dtype=np.float32)
    mask[::3] = 0
    for query in ROUND_TRIP_QUERIES:
        assert loaded.search(query, k=10) == index.search(query, k=10), query
        assert loaded.search(query, k=10, mask=mask) == index.search(query, k=10, mask=mask), query
    assert index.search("engine oil", k=10)  # the round trip compares real hits


def test_arrays_survive_a_pickle_free_npz(tmp_path: Path) -> None:
    index = build(CORPUS)
    np.savez(tmp_path / "lexical.npz", **index.to_arrays())
    with np.load(tmp_path / "lexical.npz", allow_pickle=False) as stored:
        loaded = LexicalIndex.from_arrays({name: stored[name] for name in stored.files})
    for query in ROUND_TRIP_QUERIES:
        assert loaded.search(query, k=5) == index.search(query, k=5)


# "alpha" appears in every document of RANKED; the more often, the better it scores.
RANKED = {10 + i: " ".join(["alpha"] * (8 - i) + [f"filler{i}"]) for i in range(8)}


def test_mask_leaves_out_chunks_that_would_rank_first() -> None:
    index = build(RANKED)
    full = index.search("alpha", k=8)
    assert [chunk_id for chunk_id, _ in full] == list(RANKED)  # 10 ranks first, 17 last
    masked_ids = {10, 11, 13}
    mask = np.array([chunk_id not in masked_ids for chunk_id in index.ids()], dtype=np.float32)
    for k in (1, 3, 5):
        got = index.search("alpha", k=k, mask=mask)
        # k hits, the best of the others, with their unmasked scores: as if the masked ones were absent
        assert got == [hit for hit in full if hit[0] not in masked_ids][:k]
    assert len(index.search("alpha", k=8, mask=mask)) == 5
    assert index.search("alpha", k=3, mask=np.zeros(len(index), dtype=np.float32)) == []


def test_mask_follows_ids_order_not_id_value() -> None:
    index = build(CORPUS)  # ids 101, 7, 55, 230, 12 in this order
    mask = np.array([1, 1, 0, 1, 1], dtype=np.float32)  # leaves out 55, the third indexed chunk
    assert [chunk_id for chunk_id, _ in index.search("engine oil", k=5, mask=mask)] == [101]
    assert index.search("mechanic", k=5, mask=mask) == []


@pytest.mark.parametrize("query", ["", "   ", "the and of", "xyzzy"])
def test_queries_without_known_terms_give_nothing(query: str) -> None:
    assert build(CORPUS).search(query, k=5) == []


@pytest.mark.parametrize(("ids", "texts"), [([], []), ([1, 2], ["the and", "   "])])
def test_empty_and_termless_indexes_round_trip(ids: list[int], texts: list[str]) -> None:
    index = LexicalIndex.build(ids, texts)
    assert len(index) == len(ids) and index.search("anything the", k=3) == []
    arrays = index.to_arrays()
    assert sorted(arrays) == ["lexical_ids"]
    loaded = LexicalIndex.from_arrays(arrays)
    assert len(loaded) == len(ids) and loaded.search("anything", k=3) == []
    np.testing.assert_array_equal(loaded.ids(), ids)


def test_bad_build_input_is_rejected() -> None:
    with pytest.raises(InputError, match="one id per text"):
        LexicalIndex.build([1, 2], ["only one"])
    with pytest.raises(InputError, match="duplicate"):
        LexicalIndex.build([1, 1], ["a text", "another"])


def vocab_with(arrays: dict[str, np.ndarray], **changes: object) -> dict[str, np.ndarray]:
    meta = json.loads(arrays["lexical_vocab"].tobytes()) | changes
    return arrays | {"lexical_vocab": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}


def test_outdated_or_inconsistent_arrays_are_refused() -> None:
    arrays = build(CORPUS).to_arrays()
    assert LexicalIndex.from_arrays(vocab_with(arrays)).search("oil", k=1)  # unchanged: accepted
    for tokenizer in (TOKENIZER_VERSION - 1, TOKENIZER_VERSION + 1, None):
        with pytest.raises(IndexMismatchError, match="outdated"):
            LexicalIndex.from_arrays(vocab_with(arrays, tokenizer=tokenizer))
    vocab = json.loads(arrays["lexical_vocab"].tobytes())["vocab"]
    extra = vocab | {"more": len(vocab), "terms": len(vocab) + 1}  # no postings for these
    with pytest.raises(IndexMismatchError, match="inconsistent"):
        LexicalIndex.from_arrays(vocab_with(arrays, vocab=extra))


def test_building_and_searching_logs_nothing_from_bm25s_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    # Only the root level is lowered: bm25s's own logger must stay quiet however the app configures logging.
    with caplog.at_level(logging.DEBUG):
        build(CORPUS).search("red engine", k=3)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("bm25s")] == []
