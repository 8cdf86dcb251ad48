"""OpenAI-compatible routes: POST /v1/chat/completions, GET /v1/models, POST /v1/embeddings.

Chat completions are retrieval-augmented on the last user message; the model id picks collection and
adapter (server.model_name). Streams send ``chat.completion.chunk`` events and end with ``data: [DONE]``;
the final chunk carries `finish_reason`, `usage`, `sources` and `cited`.

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="alm_...")
    client.chat.completions.create(model="almanac:docs", messages=[{"role": "user", "content": "..."}])
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from almanac.core.adapter_manifest import list_adapters
from almanac.core.errors import AlmanacError, InputError
from almanac.server.answering.answer import Answer, Ask, Prepared
from almanac.server.chat.model_name import ModelName
from almanac.server.http.client_watch import run_while_connected
from almanac.server.http.error_responses import classify, error_body
from almanac.server.http.openai_format import (
    ChatCompletionRequest,
    EmbeddingRequest,
    chat_completion,
    chunk,
    completion_id,
    embeddings_body,
)
from almanac.server.http.sse import KEEP_ALIVE, SSE_HEADERS, follow_client, sse_event
from almanac.server.keys.principal import Principal
from almanac.server.routes.auth import ReadKey, caller_of
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.openai_schemas import ChatCompletion, EmbeddingList, ModelList
from almanac.server.routes.schemas import error_responses, streamed_responses
from almanac.server.services import Services

router = APIRouter(tags=["openai"], responses=error_responses(401, 403, 429))
MAX_HISTORY = 6  # earlier turns kept: the small default model has a 2048-token window


def _ask(body: ChatCompletionRequest, principal: Principal, services: Services) -> Ask:
    name = ModelName.parse(body.model)
    collection = principal.resolve_collection(name.collection, services.settings.default_collection)
    question, history = body.question_and_history(MAX_HISTORY)
    tokens = body.max_completion_tokens or body.max_tokens
    return Ask(question, collection, body.top_k, name.adapter, tokens, history)


# JSONResponse keeps the body rendered by json.dumps, as before the model (FastAPI's fast path writes 5e-05
# as 0.00005).
_STREAMED = streamed_responses(
    "The completion; with `stream: true`, chat.completion.chunk events, then [DONE]"
)


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    response_class=JSONResponse,
    responses={**_STREAMED, **error_responses(400, 404, 409, 413, 422, 500, 502)},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, principal: ReadKey, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    """A retrieval-augmented chat completion."""
    ask = _ask(body, principal, services)
    ask.caller = caller_of(request)  # fair queueing and the token budget
    if not body.stream:
        answer = await run_while_connected(request, services.answerer.answer_async(ask))
        services.metrics.observe_answer(answer)
        return chat_completion(answer, body.model)
    cancel = threading.Event()
    events = services.answerer.stream(ask, cancel)
    first = await anext(events)  # errors up to here get a plain status
    assert isinstance(first, Prepared)
    chunks = _chunks(body.model, follow_client(request, events, cancel), services)
    return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)


async def _chunks(
    model: str, events: AsyncIterator[Prepared | str | Answer | None], services: Services
) -> AsyncIterator[bytes]:
    cid = completion_id()
    yield sse_event(chunk(cid, model, {"role": "assistant", "content": ""}))
    try:
        async for item in events:
            if item is None:
                yield KEEP_ALIVE
            elif isinstance(item, str):
                yield sse_event(chunk(cid, model, {"content": item}))
            elif isinstance(item, Answer):
                services.metrics.observe_answer(item)
                extra = {"usage": item.usage, "sources": item.sources_json(), "cited": item.cited}
                yield sse_event(chunk(cid, model, {}, item.finish_reason, **extra))
    except AlmanacError as exc:  # the openai client raises an APIError on a data event holding "error"
        yield sse_event(error_body(classify(exc)[1], str(exc)))
        return
    yield sse_event("[DONE]")


@router.get("/v1/models", response_model=ModelList)
async def list_models(principal: ReadKey, services: ServicesDep) -> dict[str, Any]:
    """'almanac', then 'almanac:C' per collection and 'almanac@A' / 'almanac:C@A' per complete adapter."""
    collections = await run_in_threadpool(services.catalog.collection_names)
    adapters = await run_in_threadpool(list_adapters, services.settings.adapters_dir)
    visible = [c for c in collections if principal.collection in (None, c)]
    names = [ModelName()] if principal.collection is None else []
    names += [ModelName(c) for c in visible]
    names += [
        ModelName(c, a.name) for a in adapters for c in [None, *visible] if c or not principal.collection
    ]
    created = int(time.time())
    data = [{"id": str(n), "object": "model", "created": created, "owned_by": "almanac"} for n in names]
    return {"object": "list", "data": data}


@router.post("/v1/embeddings", response_model=EmbeddingList, responses=error_responses(400, 413, 422))
async def embeddings(body: EmbeddingRequest, _principal: ReadKey, services: ServicesDep) -> dict[str, Any]:
    """Vectors from the configured embedder (the one the index was built with)."""
    texts = body.texts()  # a count limit; their size is bounded by the body limit
    embedder = services.embedder
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise InputError(
            f"the embedder gives {embedder.dimension} dimensions, not {body.dimensions}; omit `dimensions`"
        )
    vectors = await run_in_threadpool(embedder.embed, texts)
    tokens = await run_in_threadpool(lambda: sum(len(embedder.tokenizer.offsets(t)) for t in texts))
    return embeddings_body(vectors, embedder.model_name, body.encoding_format, tokens)
