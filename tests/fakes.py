"""Fakes for the ports: a scripted chat model that records its calls (the hashing embedder lives in core)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from almanac.core.types import ChatMessage, Completion


class ScriptedChatModel:
    """Replies with queued texts in order, then with `default`; records every call.

    >>> m = ScriptedChatModel(); m.enqueue("hi [1]")
    >>> m.complete([ChatMessage("user", "q")], 10).text, len(m.calls)
    ('hi [1]', 1)
    """

    def __init__(self, default: str = "I do not know.", name: str = "scripted") -> None:
        self.name = name
        self.default = default
        self.queue: list[str] = []
        self.calls: list[tuple[list[ChatMessage], int, str | None]] = []

    def enqueue(self, *texts: str) -> None:
        """Queue replies, returned one per call in order."""
        self.queue.extend(texts)

    def _next(self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None) -> str:
        self.calls.append((list(messages), max_tokens, adapter))
        return self.queue.pop(0) if self.queue else self.default

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """The next scripted reply, whole."""
        text = self._next(messages, max_tokens, adapter)
        prompt = sum(len(m.content.split()) for m in messages)
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=len(text.split()))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """The next scripted reply, word by word, until `cancel` is set."""
        words = self._next(messages, max_tokens, adapter).split(" ")
        for i, word in enumerate(words):
            if cancel is not None and cancel.is_set():
                return
            yield word if i == 0 else " " + word
