"""OpenAI wire format: request schemas and response bodies, shaped so the official `openai` client works.

Unknown request fields are ignored (clients send many); sampling fields (temperature, top_p, ...) are
accepted and ignored, since generation is greedy. Almanac's extras: `sources` (and `cited`) on the response
and on the final stream chunk; `top_k` on the request (``extra_body={"top_k": 3}``).
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from almanac.core.errors import InputError
from almanac.core.types import ChatMessage
from almanac.server.answering.answer import Answer

MAX_EMBEDDING_INPUTS = 256


class ContentPart(BaseModel):
    """A part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class MessageIn(BaseModel):
    """A chat message as clients send it."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field("almanac", max_length=256)
    messages: list[MessageIn] = Field(min_length=1, max_length=256)
    stream: StrictBool = False
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=100_000)
    n: int = Field(1, ge=1, le=1)
    top_k: int | None = Field(None, ge=1, le=1000)

    def question_and_history(self, max_history: int) -> tuple[str, list[ChatMessage]]:
        """The last user message (what is retrieved for and answered) and up to `max_history` earlier
        user/assistant turns. Client system messages are dropped: Almanac's system prompt, which fences the
        sources as data, is the only one the model sees."""
        turns = [m for m in self.messages if m.role in ("user", "assistant") and m.text().strip()]
        if not turns or turns[-1].role != "user":
            raise InputError("the last message must be a user message with text; send the question last")
        history = [ChatMessage("user" if m.role == "user" else "assistant", m.text()) for m in turns[:-1]]
        return turns[-1].text(), history[-max_history:] if max_history else []


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings."""

    model_config = ConfigDict(extra="ignore")
    input: str | list[str]
    model: str = Field("almanac", max_length=256)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)

    def texts(self) -> list[str]:
        """The inputs as a list, within the count limit."""
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise InputError(f"send 1 to {MAX_EMBEDDING_INPUTS} inputs, not {len(texts)}")
        return texts


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def chat_completion(answer: Answer, model: str) -> dict[str, Any]:
    """A ``chat.completion`` body with Almanac's `sources` and `cited`."""
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": answer.usage,
        "sources": answer.sources_json(),
        "cited": answer.cited,
    }


def chunk(
    cid: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice (and extra top-level fields)."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    created = int(time.time())
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
        **extra,
    }


def embeddings_body(vectors: np.ndarray, model: str, encoding: str, tokens: int) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects; base64 is little-endian float32, as OpenAI sends it."""
    data = []
    for index, vector in enumerate(vectors):
        values = np.ascontiguousarray(vector, dtype="<f4")
        embedding = base64.b64encode(values.tobytes()).decode() if encoding == "base64" else values.tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
