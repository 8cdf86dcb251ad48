"""Ports: the small Protocols the rest of Almanac talks to. Real components and test fakes both fit."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from almanac.core.types import ChatMessage, Completion


class Tokenizer(Protocol):
    """Counts tokens and gives each token's character span; the chunker needs nothing more."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of `text`, without special tokens."""
        ...


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_name: str
    dimension: int
    precision: str  # "fp32", "fp16" or "int8": a collection's vectors are all of one precision

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dimension), dtype float32, each row of unit length."""
        ...

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer whose tokens the model sees (chunk sizes are counted in these)."""
        ...


class VectorIndex(Protocol):
    """Inner-product search over int64-labelled vectors, read-only once built (a segment's FaissIndex, or a
    collection's SegmentSet); changes arrive as new segments."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each of shape (len(vectors), k); missing slots have id -1."""
        ...

    def __len__(self) -> int:
        """Live vectors (deleted ones excluded)."""
        ...


class ChatModel(Protocol):
    """A chat model, optionally with a LoRA adapter chosen per call."""

    name: str

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """Generate a whole reply."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Generate a reply piece by piece; stop soon after `cancel` is set (the client went away)."""
        ...


class TokenCounter(Protocol):
    """Counts a model's tokens (usage figures)."""

    def count_tokens(self, text: str) -> int:
        """Model tokens in `text`."""
        ...


class AdapterLoader(Protocol):
    """Loads LoRA adapters by name ahead of use."""

    def ensure_adapter(self, name: str | None) -> None:
        """Load an adapter now, so an unknown name fails before a reply starts streaming."""
        ...
