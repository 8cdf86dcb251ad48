"""LexicalIndex (BM25 via bm25s) on small hand-built corpora."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from almanac.core.errors import IndexMismatchError, InputError
from almanac.core.lexical_index import LexicalIndex, tokenize

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


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = build(CORPUS | CODE)
    index.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert len(loaded) == len(index) == 10
    for query in ("engine oil", "os.path.join", "boat", "nothing matches xyzzy"):
        assert loaded.search(query, k=10) == index.search(query, k=10)


@pytest.mark.parametrize("query", ["", "   ", "the and of", "xyzzy"])
def test_queries_without_known_terms_give_nothing(query: str) -> None:
    assert build(CORPUS).search(query, k=5) == []


def test_empty_and_termless_indexes(tmp_path: Path) -> None:
    for ids, texts in (([], []), ([1, 2], ["the and", "   "])):
        index = LexicalIndex.build(ids, texts)
        assert len(index) == len(ids) and index.search("anything the", k=3) == []
        folder = tmp_path / f"empty{len(ids)}"
        index.save(folder)
        loaded = LexicalIndex.load(folder)
        assert len(loaded) == len(ids) and loaded.search("anything", k=3) == []


def test_bad_build_input_is_rejected() -> None:
    with pytest.raises(InputError, match="one id per text"):
        LexicalIndex.build([1, 2], ["only one"])
    with pytest.raises(InputError, match="duplicate"):
        LexicalIndex.build([1, 1], ["a text", "another"])


def test_missing_corrupt_or_outdated_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(IndexMismatchError, match="rebuild"):
        LexicalIndex.load(tmp_path / "missing")
    folder = tmp_path / "lexical"
    build(CORPUS).save(folder)
    meta = json.loads((folder / "lexical.json").read_text())
    (folder / "lexical.json").write_text(json.dumps(meta | {"tokenizer": 0}))
    with pytest.raises(IndexMismatchError, match="outdated"):
        LexicalIndex.load(folder)
    (folder / "lexical.json").write_text(json.dumps(meta))
    (folder / "ids.npy").write_bytes(b"not numpy")
    with pytest.raises(IndexMismatchError, match="unreadable"):
        LexicalIndex.load(folder)


def test_building_and_searching_logs_nothing_from_bm25s_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    # Only the root level is lowered: bm25s's own logger must stay quiet however the app configures logging.
    with caplog.at_level(logging.DEBUG):
        build(CORPUS).search("red engine", k=3)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("bm25s")] == []
