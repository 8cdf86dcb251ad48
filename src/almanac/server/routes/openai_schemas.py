"""Response bodies of the OpenAI-compatible routes, as server/http/openai_format.py shapes them.

Only what Almanac sends is declared (see routes/schemas.py for why every key is), plus Almanac's extras on a
chat completion: `sources` and `cited`. Streamed completions (``chat.completion.chunk`` events) are not
modelled; the route documents them as text/event-stream.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from almanac.server.routes.schemas import ResponseModel, SourceOut, Usage


class ModelOut(ResponseModel):
    """A model id: 'almanac', 'almanac:COLLECTION', 'almanac@ADAPTER' or 'almanac:COLLECTION@ADAPTER'."""

    id: str = Field(examples=["almanac:docs@support-v1"])
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(ResponseModel):
    """GET /v1/models."""

    object: Literal["list"]
    data: list[ModelOut]


class EmbeddingOut(ResponseModel):
    """One input's vector: floats, or base64 of little-endian float32 when asked for."""

    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(ResponseModel):
    """Token counts of the inputs."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(ResponseModel):
    """POST /v1/embeddings."""

    object: Literal["list"]
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage


class ChatMessageOut(ResponseModel):
    """The assistant's message."""

    role: Literal["assistant"]
    content: str


class ChatChoice(ResponseModel):
    """The one choice of a completion."""

    index: int
    message: ChatMessageOut
    finish_reason: str = Field(examples=["stop", "length"])
    logprobs: None


class ChatCompletion(ResponseModel):
    """POST /v1/chat/completions, not streamed; `sources` and `cited` as on /v1/query."""

    id: str = Field(examples=["chatcmpl-0f1e2d3c4b5a69788796a5b4c3d2e1f0"])
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    sources: list[SourceOut]
    cited: list[int] = Field(description="1-based numbers of the sources that support the answer")
