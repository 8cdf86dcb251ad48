"""POST /v1/query (answer, optionally streamed as server-sent events) and POST /v1/search (retrieval only).

Streamed answers send, in order: ``event: sources`` (the sources, model and adapter), ``event: token`` per
piece of text (markers to no source removed), then ``event: done`` with the final answer, `cited`, `usage`,
`timings` (with `first_token`), `supported`, `refused` and `claims`. An error after the stream started
arrives as ``event: error`` in the error shape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from almanac.core.errors import AlmanacError
from almanac.core.types import ChatMessage
from almanac.server.answering.answer import Answer, Ask, Prepared
from almanac.server.http.client_watch import run_while_connected
from almanac.server.http.error_responses import classify, error_body
from almanac.server.http.sse import KEEP_ALIVE, SSE_HEADERS, follow_client, sse_event
from almanac.server.routes.auth import ReadKey, caller_of
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.schemas import (
    QueryResponse,
    SearchFilterBody,
    SearchResponse,
    error_responses,
    streamed_responses,
)
from almanac.server.services import Services

_DONE_KEYS = ("answer", "cited", "usage", "timings", "supported", "refused", "claims", "tool_calls")

router = APIRouter(tags=["query"], responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 502))

# Absolute caps; the configured (smaller) limits are checked by server.limits at run time.
_TEXT = Field(min_length=1, max_length=100_000)
_NAME = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_HISTORY = 6  # earlier turns kept, as for /v1/chat/completions: the small models have short windows


class Turn(BaseModel):
    """An earlier turn of the conversation (the web page sends its own)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=100_000)


class QueryRequest(BaseModel):
    """POST /v1/query."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "When did Mount Kessik last erupt?"},
                {"question": "Which bike is the lightest?", "collection": "shop", "top_k": 5, "stream": True},
                {
                    "question": "Which red bike is the lightest?",
                    "filter": {"table": "bikes", "fields": {"color": "red"}},
                },
            ]
        },
    )
    question: str = _TEXT
    collection: str | None = _NAME
    top_k: int | None = Field(None, ge=1, le=1000)
    adapter: str | None = Field(None, min_length=1, max_length=64)
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    stream: StrictBool = False
    filter: SearchFilterBody | None = Field(None, description="only sources that meet these conditions")
    history: list[Turn] = Field(
        default_factory=list,
        max_length=256,
        description=f"earlier turns, oldest first (the last {MAX_HISTORY} are used); the question is "
        "searched with their context",
    )


class SearchRequest(BaseModel):
    """POST /v1/search."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "granite lighthouse", "collection": "docs", "top_k": 3},
                {
                    "query": "light bike",
                    "filter": {"kind": "row", "table": "bikes", "fields": {"color": "red"}},
                },
            ]
        },
    )
    query: str = _TEXT
    collection: str | None = _NAME
    top_k: int | None = Field(None, ge=1, le=1000)
    filter: SearchFilterBody | None = Field(None, description="only sources that meet these conditions")


# JSONResponse keeps the body rendered by json.dumps, as before the model (FastAPI's default fast path
# writes 5e-05 as 0.00005).
_STREAMED = streamed_responses("The answer; with `stream: true`, server-sent events: sources, token..., done")


@router.post(
    "/v1/query",
    response_model=QueryResponse,
    response_class=JSONResponse,
    responses={**_STREAMED, **error_responses(500)},
)
async def query(
    body: QueryRequest, request: Request, principal: ReadKey, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    """Answer a question from the collection, with sources and checked citations."""
    collection = principal.resolve_collection(body.collection, services.settings.default_collection)
    where = body.filter.to_filter() if body.filter else None
    history = [ChatMessage(t.role, t.content) for t in body.history if t.content.strip()][-MAX_HISTORY:]
    ask = Ask(body.question, collection, body.top_k, body.adapter, body.max_tokens, history, where)
    ask.caller = caller_of(request)  # fair queueing and the token budget
    if body.stream:
        return await _stream(request, services, ask)
    answer = await run_while_connected(request, services.answerer.answer_async(ask))
    services.metrics.observe_answer(answer)
    return answer.as_json()


async def _stream(request: Request, services: Services, ask: Ask) -> StreamingResponse:
    cancel = threading.Event()
    events = services.answerer.stream(ask, cancel)
    first = await anext(events)  # errors up to here (limits, retrieval, a full queue) get a plain status
    assert isinstance(first, Prepared)
    body = _answer_events(first, follow_client(request, events, cancel), services)
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def _answer_events(
    prepared: Prepared, events: AsyncIterator[Prepared | str | Answer | None], services: Services
) -> AsyncIterator[bytes]:
    sources = {
        "sources": [hit.as_json() for hit in prepared.hits],
        "model": services.chat.name,
        "adapter": prepared.adapter,
        "warnings": prepared.warnings,
    }
    yield sse_event(sources, "sources")
    try:
        async for item in events:
            if item is None:
                yield KEEP_ALIVE
            elif isinstance(item, str):
                yield sse_event({"text": item}, "token")
            elif isinstance(item, Answer):
                services.metrics.observe_answer(item)
                done = item.as_json()
                event = {k: done[k] for k in _DONE_KEYS}
                if item.tool_calls:  # the rows the lookups returned follow the sources sent first
                    event["sources"] = done["sources"]
                yield sse_event(event, "done")
    except AlmanacError as exc:
        yield sse_event(error_body(classify(exc)[1], str(exc)), "error")


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, principal: ReadKey, services: ServicesDep) -> dict[str, Any]:
    """Hybrid search without generation; concurrent searches share one embedding call."""
    collection = principal.resolve_collection(body.collection, services.settings.default_collection)
    where = body.filter.to_filter() if body.filter else None
    limits = services.answerer.limits
    query_text = limits.question(body.query, "query")
    k = limits.top_k(body.top_k if body.top_k is not None else services.settings.retrieval.top_k)
    started = time.perf_counter()
    hits = await run_in_threadpool(services.searcher.search, query_text, collection, k, where)
    services.metrics.retrieval.observe(time.perf_counter() - started)
    warnings: list[str] = []
    hits = await run_in_threadpool(services.sources.refresh, hits, warnings)  # rows as they are now
    return {"results": [hit.as_json() for hit in hits], "warnings": warnings}
