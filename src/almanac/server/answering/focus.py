"""Focused context for small readers: rank the retrieved sources by how well their best sentence matches the
question, keep the few best, and cut long passages down to their matching sentences.

A cross-encoder reranker would do this better, but no installable package ships one with its weights, so
the embedding model stands in: one `embed` call scores the question against every sentence of every
candidate. Focusing also cuts the prompt, and with it the reader's prefill time, which dominates on a CPU.

The best sentence score of all candidates is the question's *relevance*; below `min_relevance` the
collection is taken not to answer the question, and the model is not asked (a refusal costs no generation).

    >>> split_sentences("Ada wrote it. It ran in 1843!\\nNotes: none")
    ['Ada wrote it.', 'It ran in 1843!', 'Notes: none']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from almanac.core.ports import Embedder
from almanac.core.prompt import CITATION
from almanac.core.settings import AnswerSettings
from almanac.core.types import ChatMessage, Hit

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'`*])|\n+")
_MARKERS = re.compile(r"\s*" + CITATION.pattern)  # with the space before them
_GAP = "…"  # marks the places where sentences were left out


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of `text`, stripped, empty ones dropped."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


@dataclass(frozen=True, slots=True)
class Focused:
    """The sources chosen for the reader (focused text in `Hit.text`), and the question's relevance."""

    hits: list[Hit]
    relevance: float


class SourceFocus:
    """Chooses and trims the reader's sources with the embedding model."""

    def __init__(self, embedder: Embedder, settings: AnswerSettings) -> None:
        self.embedder, self.settings = embedder, settings

    def focus(self, question: str, hits: Sequence[Hit], keep: int) -> Focused:
        """The best `keep` hits, best first, long ones cut to their best sentences."""
        if not hits:
            return Focused([], 0.0)
        pieces = [self._pieces(hit) for hit in hits]
        flat = [piece for group in pieces for piece in group]
        vectors = self.embedder.embed([question, *flat])
        scores = vectors[1:] @ vectors[0]
        per_hit, start = [], 0
        for group in pieces:
            per_hit.append(scores[start : start + len(group)])
            start += len(group)
        best = [float(s.max()) for s in per_hit]
        order = sorted(range(len(hits)), key=lambda i: -best[i])[:keep]
        chosen = [self._trim(hits[i], pieces[i], per_hit[i]) for i in order]
        return Focused(chosen, max(best))

    def _pieces(self, hit: Hit) -> list[str]:
        """What is scored: the whole text of a row or short passage, else each sentence."""
        if hit.kind == "row" or len(hit.text) <= self.settings.long_chars:
            return [hit.text]
        return split_sentences(hit.text) or [hit.text]

    def _trim(self, hit: Hit, pieces: list[str], scores: np.ndarray) -> Hit:
        if not self.settings.focus_sentences or len(pieces) <= self.settings.focus_sentences:
            return hit
        keep = sorted(np.argsort(-scores)[: self.settings.focus_sentences])
        parts, previous = [], -1
        for index in keep:
            if previous >= 0 and index != previous + 1:
                parts.append(_GAP)
            parts.append(pieces[index])
            previous = index
        return replace(hit, text=" ".join(parts))


def standalone_query(question: str, history: Sequence[ChatMessage], turns: int) -> str:
    """What retrieval searches for: a follow-up ("How much does it weigh?") carries no subject of its own,
    so the last `turns` exchanges of the conversation (questions and replies: the subject is often named
    only in the reply) are put before it, citation markers removed.

        >>> history = [ChatMessage("user", "Which bike won?"), ChatMessage("assistant", "The Storm SL [1].")]
        >>> standalone_query("How heavy is it?", history, 1)
        'Which bike won?\\nThe Storm SL.\\nHow heavy is it?'
    """
    earlier = [_MARKERS.sub("", m.content).strip() for m in history if m.role in ("user", "assistant")]
    earlier = [text for text in earlier if text]
    return "\n".join([*earlier[-2 * turns :], question]) if turns and earlier else question
