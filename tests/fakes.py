"""Fakes for the ports and the services built on them (the hashing embedder lives in core).

Chat models: `ScriptedChatModel` (queued replies, records calls), `PassageTeacher` (drafts questions about the
passage it is shown), `OracleChat` (answers from gold answers with one adapter, agrees with anything without).
Services: `HashingRetriever` (cosine over in-memory chunks) and `ChatAnswerer` (retrieve, the server's prompt,
the chat model), the pieces fine-tuning borrows from the server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from almanac.core.embedder import HashingEmbedder
from almanac.core.ports import ChatModel
from almanac.core.prompt import NO_ANSWER, build_answer_messages, origin_of
from almanac.core.search_filter import SearchFilter
from almanac.core.types import ChatMessage, ChunkRecord, Completion, Hit


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

    def enqueue_tool_call(self, name: str, **arguments: object) -> None:
        """Queue a reply that calls a lookup tool, the way Qwen2.5 writes one (core/lookup_tool.py)."""
        self.queue.append(
            "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"
        )

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


class PassageTeacher(ScriptedChatModel):
    """A scripted teacher that drafts a question about the passage in the request.

    `drafts` maps a key phrase to (question, answer, wrong answer); the first phrase found in the passage
    picks the draft, returned in a fenced JSON list the way a chatty model writes it.

    >>> teacher = PassageTeacher({"ferry": ("When?", "7:40", "9")})
    >>> print(teacher.reply_for("It leaves at 7:40 (ferry)."))
    Here you go:
    ```json
    [{"question": "When?", "answer": "7:40", "rationale": "It leaves at 7:40 (ferry).", "wrong_answer": "9"}]
    ```
    """

    def __init__(self, drafts: Mapping[str, tuple[str, str, str]]) -> None:
        super().__init__()
        self.drafts = dict(drafts)

    def reply_for(self, passage: str) -> str:
        """What a well-behaved teacher says about `passage`; fails the test on a passage without a draft."""
        for key, (question, answer, wrong) in self.drafts.items():
            if key in passage:
                item = {"question": question, "answer": answer, "rationale": passage, "wrong_answer": wrong}
                return "Here you go:\n```json\n" + json.dumps([item]) + "\n```"
        raise AssertionError(f"no scripted reply for {passage!r}")

    def _next(self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None) -> str:
        self.calls.append((list(messages), max_tokens, adapter))
        passage = messages[-1].content.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
        return self.reply_for(passage)


class OracleChat:
    """With adapter `adapter`, answers the questions in `gold` and refuses the rest; without, agrees with all.

    >>> oracle = OracleChat({"Who planted the quinces?": "Ada Brell"})
    >>> ask = [ChatMessage("user", "Question: Who planted the quinces?")]
    >>> print(oracle.complete(ask, 20, adapter="good").text)
    The source says so [1].
    Answer: Ada Brell
    >>> oracle.complete(ask, 20).text, oracle.calls[-1]
    ('Yes, I think so.', ('Who planted the quinces?', None))
    """

    name = "oracle"

    def __init__(self, gold: Mapping[str, str], adapter: str = "good") -> None:
        self.gold, self.adapter = dict(gold), adapter
        self.calls: list[tuple[str, str | None]] = []

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """The gold answer, a refusal, or agreement; records (question, adapter)."""
        question = messages[-1].content.split("Question: ", 1)[1].split("\n", 1)[0]
        self.calls.append((question, adapter))
        if adapter != self.adapter:
            return Completion("Yes, I think so.")
        known = next((a for q, a in self.gold.items() if question.startswith(q)), None)
        return Completion(f"The source says so [1].\nAnswer: {known}" if known else NO_ANSWER)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """The same reply as `complete`, in one piece."""
        yield self.complete(messages, max_tokens, adapter).text


class HashingRetriever:
    """Dense search over in-memory chunks with the hashing embedder; records its queries."""

    def __init__(self, chunks: Sequence[ChunkRecord], dimension: int = 512) -> None:
        self.chunks = list(chunks)
        self.embedder = HashingEmbedder(dimension)
        self.vectors = self.embedder.embed([c.text for c in self.chunks])
        self.queries: list[str] = []

    def search(self, query: str, collection: str, top_k: int, where: SearchFilter | None = None) -> list[Hit]:
        """Best `top_k` chunks of `collection` by cosine (of one kind, when `where` names one)."""
        self.queries.append(query)
        scores = self.vectors @ self.embedder.embed([query])[0]
        kind = where.kind if where is not None else None
        order = [
            int(i)
            for i in np.argsort(-scores, kind="stable")
            if self.chunks[i].collection == collection and kind in (None, self.chunks[i].kind)
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
