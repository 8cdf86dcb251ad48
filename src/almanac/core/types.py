"""Domain types shared by the indexer, the server and fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

SourceKind = Literal["document", "row"]


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text from a source with where it came from (heading path, page, row key)."""

    text: str
    locator: str = ""


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk cut from a section, before it is stored."""

    text: str
    locator: str
    ordinal: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A committed chunk as the catalog stores it."""

    id: int
    document_id: int
    collection: str
    source: str
    locator: str
    text: str
    kind: SourceKind
    ordinal: int = 0


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its score; `kind` says whether it came from a document or a row."""

    chunk_id: int
    score: float
    text: str
    source: str
    locator: str
    kind: SourceKind
    document_id: int = 0

    def as_json(self) -> dict[str, object]:
        """The user-facing source object: {id, kind, source, locator, text, score}."""
        return {
            "id": self.chunk_id,
            "kind": self.kind,
            "source": self.source,
            "locator": self.locator,
            "text": self.text,
            "score": round(float(self.score), 6),
        }


@dataclass(frozen=True, slots=True)
class RowKey:
    """Where a row lives: the registered source name, its table and its primary-key values."""

    source: str
    table: str
    key: tuple[tuple[str, object], ...]

    def uri(self) -> str:
        """Stable text form, used as the document's `source`: ``db://SOURCE/TABLE/col=val,col=val``.

        Values are percent-encoded so that any value round-trips (``a,b=c`` -> ``a%2Cb%3Dc``).
        """
        parts = ",".join(f"{quote(str(col), safe='')}={quote(str(val), safe='')}" for col, val in self.key)
        return f"db://{self.source}/{self.table}/{parts}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation."""

    role: Literal["system", "user", "assistant", "tool"]  # tool: a lookup result (core/lookup_tool.py)
    content: str


@dataclass(slots=True)
class Completion:
    """What a chat model returns: the text and token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    extra: dict[str, object] = field(default_factory=dict)
