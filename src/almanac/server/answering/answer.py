"""What answering produces: the prepared prompt, and the answer with its sources, citations and costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from almanac.core.prompt import origin_of
from almanac.core.search_filter import SearchFilter
from almanac.core.types import ChatMessage, Hit
from almanac.server.answering.support import Claim
from almanac.server.http.rate_limit import Caller


def source_label(hit: Hit) -> str:
    """How a hit is named in the prompt; core.prompt.origin_of, the naming fine-tuning trains on."""
    return origin_of(hit.source, hit.locator)


@dataclass(slots=True)
class Ask:
    """One question and its options (None: the configured default); `where` limits the sources searched."""

    question: str
    collection: str | None = None
    top_k: int | None = None
    adapter: str | None = None
    max_tokens: int | None = None
    history: Sequence[ChatMessage] = ()
    where: SearchFilter | None = None
    caller: Caller | None = None  # who asks (key or IP): the model queue's fairness and token budget


@dataclass(slots=True)
class Prepared:
    """A question made ready for the model: the sources shown (numbered from 1) and the messages."""

    question: str
    collection: str
    hits: list[Hit]
    messages: list[ChatMessage]
    adapter: str | None
    max_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    relevance: float = 1.0  # the best question-sentence similarity among the candidates
    answerable: bool = True  # False: no source is relevant enough; the model is not asked
    warnings: list[str] = field(default_factory=list)  # e.g. a source database that could not be read
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # lookups the model made (tool_calls.py)


@dataclass(slots=True)
class Answer:
    """A generated answer. `cited` holds the 1-based numbers of the sources that support it (the model's own
    valid markers first); `claims` are its sentences with their supporting sources; `refused` says the
    answer is that the sources do not answer the question."""

    text: str
    hits: list[Hit]
    cited: list[int]
    model: str
    adapter: str | None
    usage: dict[str, int]
    timings: dict[str, float]
    finish_reason: str = "stop"
    claims: list[Claim] = field(default_factory=list)
    refused: bool = False
    warnings: list[str] = field(default_factory=list)  # sources left out, e.g. a source database was down
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # lookups the model made; rows are hits

    @property
    def supported(self) -> bool:
        """True when every claim of the answer has a supporting source."""
        return all(claim.supported for claim in self.claims)

    def sources_json(self) -> list[dict[str, object]]:
        """The sources as user-facing objects, in prompt order (source n is element n-1)."""
        return [hit.as_json() for hit in self.hits]

    def as_json(self) -> dict[str, Any]:
        """The /v1/query response body."""
        return {
            "answer": self.text,
            "sources": self.sources_json(),
            "cited": self.cited,
            "model": self.model,
            "adapter": self.adapter,
            "usage": self.usage,
            "timings": {name: round(seconds, 4) for name, seconds in self.timings.items()},
            "supported": self.supported,
            "refused": self.refused,
            "claims": [claim.as_json() for claim in self.claims],
            "warnings": self.warnings,
            "tool_calls": self.tool_calls,
        }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI-style token counts."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
