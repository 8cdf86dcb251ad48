"""Test doubles for the services fine-tuning borrows from the server, plus a small corpus.

`HashingRetriever` ranks an in-memory list of chunks by hashing-embedder cosine; `ScriptedAnswerer` answers
with a chat model over the retriever's hits, the way the server does (same prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from almanac.core.embedder import HashingEmbedder
from almanac.core.ports import ChatModel
from almanac.core.prompt import build_answer_messages, origin_of
from almanac.core.types import ChunkRecord, Hit

DOCUMENTS = {
    "harbor.md": [
        "The Kestrel Harbor ferry leaves the north pier at 7:40 every weekday morning.",
        "Kestrel Harbor charges a mooring fee of 18 crowns per night for small boats.",
    ],
    "orchard.md": [
        "The Vellmont orchard grows mostly quince trees planted in 1931 by Ada Brell.",
        "Cider from the Vellmont orchard is pressed each October in a stone barn.",
    ],
    "observatory.md": [
        "The Tarn Ridge observatory houses a 61 centimetre reflecting telescope.",
        "Visitors reach the Tarn Ridge observatory by a gravel road from Millbeck village.",
    ],
    "library.md": [
        "The Osric lending library keeps its map collection in the west reading room.",
        "Members of the Osric library may borrow at most six volumes at a time.",
    ],
}
ROWS = [
    "bikes | id: 1 | name: Trail 29 | weight_kg: 12.5 | colour: slate",
    "bikes | id: 2 | name: Gravel Fox | weight_kg: 9.8 | colour: amber",
]


def corpus(collection: str = "default") -> list[ChunkRecord]:
    """The documents' chunks then the rows, with ids from 1 and one document per file or row."""
    chunks: list[ChunkRecord] = []
    for doc_id, (source, texts) in enumerate(DOCUMENTS.items(), start=1):
        for ordinal, text in enumerate(texts):
            chunks.append(
                ChunkRecord(
                    len(chunks) + 1, doc_id, collection, source, f"part {ordinal}", text, "document", ordinal
                )
            )
    for row_number, text in enumerate(ROWS, start=1):
        doc_id = len(DOCUMENTS) + row_number
        chunks.append(
            ChunkRecord(
                len(chunks) + 1, doc_id, collection, f"db://shop/bikes/id={row_number}", "", text, "row"
            )
        )
    return chunks


class HashingRetriever:
    """Dense search over in-memory chunks with the hashing embedder; records its queries."""

    def __init__(self, chunks: Sequence[ChunkRecord], dimension: int = 512) -> None:
        self.chunks = list(chunks)
        self.embedder = HashingEmbedder(dimension)
        self.vectors = self.embedder.embed([c.text for c in self.chunks])
        self.queries: list[str] = []

    def search(self, query: str, collection: str, top_k: int) -> list[Hit]:
        """Best `top_k` chunks of `collection` by cosine."""
        self.queries.append(query)
        scores = self.vectors @ self.embedder.embed([query])[0]
        order = [
            int(i) for i in np.argsort(-scores, kind="stable") if self.chunks[i].collection == collection
        ]
        return [self._hit(self.chunks[i], float(scores[i])) for i in order[:top_k]]

    @staticmethod
    def _hit(chunk: ChunkRecord, score: float) -> Hit:
        return Hit(chunk.id, score, chunk.text, chunk.source, chunk.locator, chunk.kind, chunk.document_id)


@dataclass
class FakeAnswer:
    """An answer the way the server returns it."""

    text: str
    hits: list[Hit] = field(default_factory=list)


class ChatAnswerer:
    """Retrieve, build the server's prompt, ask the chat model (with the adapter asked for)."""

    def __init__(self, retriever: HashingRetriever, chat: ChatModel, top_k: int = 3) -> None:
        self.retriever, self.chat, self.top_k = retriever, chat, top_k

    def answer(self, question: str, collection: str, adapter: str | None) -> FakeAnswer:
        """The chat model's reply over the retrieved sources."""
        hits = self.retriever.search(question, collection, self.top_k)
        messages = build_answer_messages(question, [(origin_of(h.source, h.locator), h.text) for h in hits])
        return FakeAnswer(self.chat.complete(messages, 48, adapter=adapter).text, hits)
