"""The chunker against its contract: token limits, whole words, coverage in order, overlap, stable hashes."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import time

import pytest

from almanac.core.embedder import HashingEmbedder, HFTokenizer, embedded_minilm_path
from almanac.core.errors import ConfigError
from almanac.core.ports import Tokenizer
from almanac.core.types import ChunkDraft, Section
from almanac.indexer.chunker import Chunker, chunk_hash

VOCAB = (  # noqa: SIM905 - a sentence reads better than a list of 24 strings
    "the a bike frame wheel warranty covers ten years, steel; carbon. Brakes! hours: 9-18 "
    "e.g. Northwind's naïve café internationalization 3.14 (see page 2) x 🚲ride"
).split()


class CharTokenizer:
    """Every non-space character is a token: makes words many tokens long."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]


class CountingTokenizer:
    """Wraps a tokenizer and counts calls to `offsets`."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.calls = 0

    def offsets(self, text: str) -> list[tuple[int, int]]:
        self.calls += 1
        return self.inner.offsets(text)


def random_text(rng: random.Random, n_words: int) -> str:
    """Words from VOCAB with spaces, line breaks and the odd blank line."""
    parts = []
    for _ in range(n_words):
        parts.append(rng.choice(VOCAB))
        parts.append(rng.choices([" ", "\n", "\n\n", "  "], weights=[20, 2, 1, 1])[0])
    return "".join(parts).strip()


def char_spans(chunks: list[ChunkDraft], text: str) -> list[tuple[int, int]]:
    """Where each chunk sits in `text`, searching forward; each must start and end at a word boundary."""
    spans, lo = [], 0
    for chunk in chunks:
        at = text.find(chunk.text, lo)
        assert at >= 0, f"chunk {chunk.ordinal} is not a slice of the input: {chunk.text!r}"
        end = at + len(chunk.text)
        assert at == 0 or text[at - 1].isspace(), f"chunk {chunk.ordinal} starts mid-word: {chunk.text!r}"
        assert end == len(text) or text[end].isspace(), f"chunk {chunk.ordinal} ends mid-word: {chunk.text!r}"
        spans.append((at, end))
        lo = at + 1
    return spans


def check_contract(tokenizer: Tokenizer, text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Chunk `text` and check every promise; returns the chunks' character spans."""
    chunks = Chunker(tokenizer, size, overlap).chunk([Section(text, "loc")])
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == chunk.text.strip() and chunk.text
        assert len(tokenizer.offsets(chunk.text)) <= size, chunk.text
        assert chunk.locator == "loc"
        assert chunk.content_hash == chunk_hash(chunk.text, "loc")
    spans = char_spans(chunks, text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)  # nothing lost at either end
    for (start_a, end_a), (start_b, end_b) in itertools.pairwise(spans):
        assert start_a < start_b and end_a < end_b  # in order, always progressing
        assert not text[end_a:start_b].strip()  # no word falls between two chunks
    return spans


def overlapping(spans: list[tuple[int, int]]) -> bool:
    return all(b[0] < a[1] for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (16, 4), (32, 8), (64, 16), (200, 40), (5, 4)])
@pytest.mark.parametrize("seed", range(4))
def test_contract_holds_on_random_texts(size: int, overlap: int, seed: int) -> None:
    rng = random.Random(seed * 1000 + size)
    text = random_text(rng, rng.randint(size // 2, size * 8))
    spans = check_contract(HashingEmbedder().tokenizer, text, size, overlap)
    if size >= 16 and overlap >= 3:  # room for the longest vocabulary word (4 tokens) on both sides
        assert overlapping(spans), "consecutive windows must share words"


def test_overlap_is_close_to_the_setting() -> None:
    text = " ".join(f"w{i}" for i in range(100))  # one token per word, no sentence ends
    chunks = Chunker(HashingEmbedder().tokenizer, 10, 3).chunk([Section(text)])
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert first == [f"w{i}" for i in range(10)]
    assert second[:3] == first[-3:]
    assert len(chunks) == 14  # starts 0, 7, 14, ... 91


def test_no_overlap_partitions_the_words() -> None:
    text = random_text(random.Random(7), 300)
    chunks = Chunker(HashingEmbedder().tokenizer, 20, 0).chunk([Section(text)])
    assert [w for c in chunks for w in c.text.split()] == text.split()


def test_prefers_to_end_at_a_sentence() -> None:
    text = "One two three four five six seven. Eight nine ten eleven twelve thirteen."
    chunks = Chunker(HashingEmbedder().tokenizer, 10, 0).chunk([Section(text)])
    assert chunks[0].text == "One two three four five six seven."


def test_a_word_longer_than_the_window_is_the_only_split() -> None:
    text = "ab cd " + "x" * 30 + " ef gh"
    tokenizer = CharTokenizer()
    chunks = Chunker(tokenizer, 8, 2).chunk([Section(text)])
    assert all(len(tokenizer.offsets(c.text)) <= 8 for c in chunks)
    assert chunks[0].text == "ab cd"  # stops before the long word instead of cutting into it
    assert chunks[-1].text.endswith("ef gh")
    joined = "".join(c.text.replace(" ", "") for c in chunks)
    assert joined.count("x") >= 30  # every character of the long word is in some chunk


def test_sections_keep_locators_and_ordinals_run_across_the_document() -> None:
    sections = [
        Section("Tiny intro.", "Guide"),
        Section("Short install note.", "Guide > Install"),
        Section("", "Guide > Empty"),
        Section(" ".join(f"step{i}" for i in range(30)), "Guide > Use"),
    ]
    chunks = Chunker(HashingEmbedder().tokenizer, 12, 2).chunk(sections)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[0].text == "Tiny intro." and chunks[0].locator == "Guide"  # not merged with the next
    assert chunks[1].text == "Short install note." and chunks[1].locator == "Guide > Install"
    assert {c.locator for c in chunks[2:]} == {"Guide > Use"}
    assert "Guide > Empty" not in {c.locator for c in chunks}


def test_same_locator_runs_are_joined_and_tokenised_once() -> None:
    tokenizer = CountingTokenizer(HashingEmbedder().tokenizer)
    sections = [Section("alpha beta", "p"), Section("gamma delta", "p"), Section("epsilon", "q")]
    chunks = Chunker(tokenizer, 50, 5).chunk(sections)
    assert [(c.text, c.locator) for c in chunks] == [("alpha beta\n\ngamma delta", "p"), ("epsilon", "q")]
    assert tokenizer.calls == 2


def test_hashes_are_stable_and_depend_on_text_and_locator() -> None:
    text = random_text(random.Random(3), 200)
    chunker = Chunker(HashingEmbedder().tokenizer, 30, 5)
    first = chunker.chunk([Section(text, "page 1")])
    again = chunker.chunk([Section(text, "page 1")])
    assert [c.content_hash for c in first] == [c.content_hash for c in again]
    expected = hashlib.sha256(("page 1\n" + first[0].text).encode()).hexdigest()
    assert first[0].content_hash == expected
    assert chunk_hash("same text", "page 1") != chunk_hash("same text", "page 2")
    assert chunk_hash("same text", "a") != chunk_hash("same text!", "a")


def test_empty_input_gives_no_chunks() -> None:
    assert Chunker(HashingEmbedder().tokenizer, 16, 4).chunk([Section("  \n ", "x")]) == []
    assert Chunker(HashingEmbedder().tokenizer, 16, 4).chunk([]) == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (16, 16), (16, -1), (16, 20)])
def test_impossible_settings_are_a_config_error(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError, match="ALMANAC_CHUNKING__OVERLAP_TOKENS"):
        Chunker(HashingEmbedder().tokenizer, size, overlap)


def test_large_text_is_chunked_quickly() -> None:
    text = random_text(random.Random(11), 200_000)
    tokenizer = HashingEmbedder().tokenizer
    tokens = len(tokenizer.offsets(text))
    started = time.perf_counter()
    chunks = Chunker(tokenizer, 200, 40).chunk([Section(text, "big")])
    elapsed = time.perf_counter() - started
    assert len(chunks) >= tokens // 200
    assert elapsed < 5.0, f"chunking {tokens} tokens took {elapsed:.2f}s"


@pytest.fixture(scope="module")
def minilm_tokenizer() -> HFTokenizer:
    """The embedded MiniLM word-piece tokenizer (the tokenizer alone: the same files, no weights)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_minilm_path()), local_files_only=True)
    return HFTokenizer(lambda: tokenizer)


@pytest.mark.parametrize(("size", "overlap"), [(24, 6), (48, 10), (128, 32)])
def test_contract_holds_with_the_minilm_tokenizer(
    minilm_tokenizer: HFTokenizer, size: int, overlap: int
) -> None:
    text = random_text(random.Random(size), 600)
    spans = check_contract(minilm_tokenizer, text, size, overlap)
    assert len(spans) > 1 and overlapping(spans)
    # words of 15-17 word pieces still fit a window whole
    tail = " pneumonoultramicroscopicsilicovolcanoconiosis https://example.org/a_b?c=1 end."
    check_contract(minilm_tokenizer, text[:300].strip() + tail, size, overlap)
