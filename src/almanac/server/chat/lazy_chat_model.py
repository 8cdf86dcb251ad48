"""A chat model loaded on first use or by the server's warm-up, so the port opens (and /healthz answers)
while a multi-second model load, or the one-time GGUF conversion, runs in a thread.

It fits the ChatModel port and passes through what the transformers model adds: a `cancel` event for
`stream`, `count_tokens`, adapter loading. A model without those (a test fake) still works: a stream is
then stopped between pieces, and tokens are counted as words.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from almanac.core.ports import ChatModel
from almanac.core.types import ChatMessage, Completion

log = logging.getLogger(__name__)


class LazyChatModel:
    """Wraps a loader; the first call (or `load()`) builds the model once, under a lock."""

    def __init__(self, loader: Callable[[], ChatModel], name: str) -> None:
        self.name = name
        self._loader = loader
        self._model: ChatModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: ChatModel) -> LazyChatModel:
        """An already loaded model (tests, or a model built elsewhere)."""
        lazy = cls(lambda: model, getattr(model, "name", "almanac"))
        lazy.load()
        return lazy

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def load(self) -> ChatModel:
        """The model, loading it now if needed."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._loader()
        return self._model

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """The whole reply."""
        return self.load().complete(messages, max_tokens, adapter)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Reply pieces; generation stops soon after `cancel` is set."""
        pieces = self.load().stream(messages, max_tokens, adapter, cancel=cancel)
        try:
            for piece in pieces:
                if cancel is not None and cancel.is_set():
                    break
                yield piece
        finally:
            closer = getattr(pieces, "close", None)
            if closer is not None:
                closer()  # the transformers model stops its generation thread on close

    def count_tokens(self, text: str) -> int:
        """Model tokens in `text` (words for a model without a tokenizer)."""
        counter: Any = getattr(self.load(), "count_tokens", None)
        return int(counter(text)) if counter is not None else len(text.split())

    def ensure_adapter(self, name: str | None) -> None:
        """Load an adapter now (a no-op when loaded or when the model has no adapters): fails before a
        stream starts rather than in the middle of it."""
        if name is None:
            return  # the base model: nothing to load ahead of generation
        model: Any = self.load()
        if not hasattr(model, "load_adapter"):
            return
        if name not in getattr(model, "adapters", list)():
            model.load_adapter(name)
