"""BM25 lexical index over chunk texts (bm25s), the keyword half of hybrid retrieval.

Terms keep code identifiers whole and also split them, so ``os.path.join``, ``__init__`` and ``FaissIndex``
match both exactly and by their parts; English stopwords are dropped:

    >>> tokenize("Call os.path.join in __init__ of FaissIndex")
    ['call', 'os.path.join', 'os', 'path', 'join', '__init__', 'init', 'faissindex', 'faiss', 'index']
    >>> index = LexicalIndex.build([10, 20], ["red cars are fast", "the sky is blue"])
    >>> [chunk_id for chunk_id, _ in index.search("blue sky", k=5)]
    [20]

Each index segment carries the BM25 index of its own chunks (Lucene keeps per-segment postings too): its
arrays travel inside the segment file (`to_arrays` / `from_arrays`, no pickle). Deleted or filtered-out
chunks are masked out of the scores before the top-k cut, so they never take a place in it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from almanac.core.errors import IndexMismatchError, InputError

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG at import: a line per search

TOKENIZER_VERSION = 1  # bump when `tokenize` changes: saved indexes then fail to load and are rebuilt
MAX_QUERY_TERMS = 256
_STOPWORDS = frozenset(STOPWORDS_EN)
_WORD = re.compile(r"\w+(?:\.\w+)*")  # words and dotted identifiers (os.path.join, 3.14)
_SEPARATORS = re.compile(r"[._]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")  # HTTPServer -> HTTP, Server


def _keep(term: str) -> bool:
    return len(term) > 1 and term not in _STOPWORDS


def _parts(word: str) -> list[str]:
    pieces = [piece for piece in _SEPARATORS.split(word) if piece]
    split = [part for piece in pieces for part in (_CAMEL.findall(piece) if piece.isascii() else [piece])]
    return [part.lower() for part in split]


@functools.lru_cache(maxsize=65_536)  # words repeat: most of a corpus's tokens are a few thousand words
def _word_terms(word: str) -> tuple[str, ...]:
    whole = word.lower()
    terms = [whole] if _keep(whole) else []
    parts = _parts(word)
    if parts != [whole]:
        terms.extend(part for part in parts if part != whole and _keep(part))
    return tuple(terms)


def tokenize(text: str) -> list[str]:
    """Lower-cased terms in order: each word or whole identifier, then its parts when it has several."""
    return [term for match in _WORD.finditer(text) for term in _word_terms(match.group())]


def query_terms(query: str) -> list[str]:
    """A query's distinct terms, in order, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(tokenize(query)))[:MAX_QUERY_TERMS]


def lucene_idf(df: int, documents: int) -> float:
    """BM25's inverse document frequency as Lucene (and bm25s's default method) computes it."""
    return math.log(1 + (documents - df + 0.5) / (df + 0.5))


def _check_ids(ids: Sequence[int], texts: Sequence[str]) -> np.ndarray:
    if len(ids) != len(texts):
        raise InputError(f"got {len(ids)} ids for {len(texts)} texts; pass one id per text")
    array = np.asarray(list(ids), dtype=np.int64)
    if len(np.unique(array)) != len(array):
        raise InputError("duplicate chunk ids; each text needs its own id")
    return array


class LexicalIndex:
    """BM25 (Lucene variant) over chunk texts, keyed by chunk id."""

    def __init__(self, ids: np.ndarray, bm25: bm25s.BM25 | None) -> None:
        self._ids = ids
        self._bm25 = bm25  # None when no text has a single term

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str]) -> LexicalIndex:
        """Index `texts[i]` under chunk id `ids[i]`."""
        id_array = _check_ids(ids, texts)
        corpus = [tokenize(text) for text in texts]
        if not any(corpus):
            return cls(id_array, None)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        log.debug("lexical_index_built documents=%d terms=%d", len(corpus), len(bm25.vocab_dict))
        return cls(id_array, bm25)

    def __len__(self) -> int:
        """Number of indexed chunks."""
        return len(self._ids)

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """term -> number of indexed chunks holding it, for the terms this index knows."""
        if self._bm25 is None:
            return {}
        vocab, indptr = self._bm25.vocab_dict, self._bm25.scores["indptr"]
        known = [t for t in terms if t in vocab and vocab[t] + 1 < len(indptr)]
        return {t: int(indptr[vocab[t] + 1] - indptr[vocab[t]]) for t in known}

    def search(
        self,
        query: str,
        k: int,
        mask: np.ndarray | None = None,
        idf: Mapping[str, float] | None = None,
    ) -> list[tuple[int, float]]:
        """Up to k (chunk id, score) pairs, best first, only scores > 0; nothing to match gives [].

        `mask` (one float per indexed chunk, in `ids()` order) multiplies the scores: 0 leaves a chunk out.
        `idf` replaces this index's own inverse document frequencies (Lucene's formula) with ones computed
        over several indexes, so scores from the segments of one collection compare as if from one index.
        """
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        terms = query_terms(query)
        frequencies = self.document_frequencies(terms)
        if self._bm25 is None or not frequencies:
            return []
        data, indices, indptr = (self._bm25.scores[name] for name in ("data", "indices", "indptr"))
        scores = np.zeros(len(self._ids), dtype=np.float32)
        for term, df in frequencies.items():
            start, end = indptr[self._bm25.vocab_dict[term]], indptr[self._bm25.vocab_dict[term] + 1]
            weight = idf[term] / lucene_idf(df, len(self._ids)) if idf is not None else 1.0
            scores[indices[start:end]] += data[start:end] * np.float32(weight)
        if mask is not None:
            scores *= mask
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties by insertion order
        return [(int(self._ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def ids(self) -> np.ndarray:
        """Chunk ids in the order they were indexed."""
        return self._ids

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as plain arrays (ids, BM25 score matrix in CSC form, vocabulary as JSON bytes)."""
        arrays = {"lexical_ids": self._ids}
        if self._bm25 is not None:
            scores = self._bm25.scores
            arrays |= {f"lexical_{name}": np.asarray(scores[name]) for name in ("data", "indices", "indptr")}
            vocab = json.dumps({"tokenizer": TOKENIZER_VERSION, "vocab": self._bm25.vocab_dict})
            arrays["lexical_vocab"] = np.frombuffer(vocab.encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LexicalIndex:
        """The index `to_arrays` gave; an outdated or inconsistent one is an IndexMismatchError."""
        ids = arrays["lexical_ids"]
        if "lexical_vocab" not in arrays:
            return cls(ids, None)
        meta = json.loads(arrays["lexical_vocab"].tobytes())
        indptr = arrays["lexical_indptr"]
        vocab = meta.get("vocab", {})
        # bm25s appends an empty token to the vocabulary after building the postings: it has no column
        if meta.get("tokenizer") != TOKENIZER_VERSION or len(indptr) - 1 not in (len(vocab), len(vocab) - 1):
            raise IndexMismatchError("lexical index is outdated or inconsistent; rebuild it from the catalog")
        bm25 = bm25s.BM25()
        bm25.scores = {
            "data": arrays["lexical_data"],
            "indices": arrays["lexical_indices"],
            "indptr": indptr,
            "num_docs": len(ids),
        }
        bm25.vocab_dict = vocab
        bm25.nonoccurrence_array = None  # only BM25L/BM25+ have one; ours is the Lucene variant
        bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
        return cls(ids, bm25)
