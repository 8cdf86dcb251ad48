"""BM25 lexical index over chunk texts (bm25s), the keyword half of hybrid retrieval.

Terms keep code identifiers whole and also split them, so ``os.path.join``, ``__init__`` and ``FaissIndex``
match both exactly and by their parts; English stopwords are dropped:

    >>> tokenize("Call os.path.join in __init__ of FaissIndex")
    ['call', 'os.path.join', 'os', 'path', 'join', '__init__', 'init', 'faissindex', 'faiss', 'index']
    >>> index = LexicalIndex.build([10, 20], ["red cars are fast", "the sky is blue"])
    >>> [chunk_id for chunk_id, _ in index.search("blue sky", k=5)]
    [20]

Saved as a folder without pickle: bm25s's own files (.npy arrays loaded with allow_pickle=False, JSON vocab
and params), ``ids.npy`` and ``lexical.json`` (written last, so a half-written folder does not load).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from almanac.core.errors import IndexMismatchError, InputError

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG at import: a line per search

TOKENIZER_VERSION = 1  # bump when `tokenize` changes: saved indexes then fail to load and are rebuilt
MAX_QUERY_TERMS = 256
_FORMAT = 1
_META = "lexical.json"
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


def tokenize(text: str) -> list[str]:
    """Lower-cased terms in order: each word or whole identifier, then its parts when it has several."""
    terms: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        whole = word.lower()
        if _keep(whole):
            terms.append(whole)
        parts = _parts(word)
        if parts != [whole]:
            terms.extend(part for part in parts if part != whole and _keep(part))
    return terms


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

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to k (chunk id, score) pairs, best first, only scores > 0; nothing to match gives []."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        terms = [term for term in dict.fromkeys(tokenize(query)) if term in vocab][:MAX_QUERY_TERMS]
        if not terms:
            return []
        scores = np.asarray(self._bm25.get_scores(terms))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties by insertion order
        return [(int(self._ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, folder: Path) -> None:
        """Write the index into `folder` (the caller writes a fresh folder and renames it into place)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self._ids, allow_pickle=False)
        if self._bm25 is not None:
            self._bm25.save(folder / "bm25", show_progress=False)
        meta = {"format": _FORMAT, "tokenizer": TOKENIZER_VERSION, "documents": len(self)}
        meta["bm25"] = self._bm25 is not None
        (folder / _META).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Read a folder written by `save`; a missing, corrupt or outdated one is an IndexMismatchError."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
            ids = np.load(folder / "ids.npy", allow_pickle=False)
            bm25 = bm25s.BM25.load(folder / "bm25", allow_pickle=False) if meta.get("bm25") else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexMismatchError(
                f"lexical index {folder} is unreadable ({exc}); rebuild it from the catalog"
            ) from exc
        expected = {"format": _FORMAT, "tokenizer": TOKENIZER_VERSION, "documents": len(ids)}
        if any(meta.get(key) != value for key, value in expected.items()) or ids.dtype != np.int64:
            raise IndexMismatchError(
                f"lexical index {folder} is outdated or inconsistent ({meta}); rebuild it"
            )
        if bm25 is not None and bm25.scores["num_docs"] != len(ids):
            raise IndexMismatchError(f"lexical index {folder} has mismatched BM25 arrays; rebuild it")
        return cls(ids, bm25)
