"""The services fine-tuning needs from the server, as small Protocols in domain words.

finetune never imports the server: the CLI passes the server's retriever and answerer in, tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from almanac.core.types import Hit


class Retriever(Protocol):
    """Finds the chunks of a collection that best match a query, best first."""

    def search(self, query: str, collection: str, top_k: int) -> list[Hit]:
        """At most `top_k` hits for `query` in `collection`."""
        ...


class Answer(Protocol):
    """What the answerer returns: the answer text and the sources it was given."""

    @property
    def text(self) -> str:
        """The answer, with citations like [1]."""
        ...

    @property
    def hits(self) -> Sequence[Hit]:
        """The retrieved sources shown to the model, in prompt order."""
        ...


class Answerer(Protocol):
    """Answers a question over a collection the way the server does (retrieve, prompt, generate)."""

    def answer(self, question: str, collection: str, adapter: str | None) -> Answer:
        """The answer to `question`, with the given adapter (None: the base model)."""
        ...
