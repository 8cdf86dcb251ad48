"""Response bodies of the REST API as pydantic models, so /docs and /openapi.json show the real shapes, and
the search filter that /v1/search and /v1/query both take (`SearchFilterBody`).

Every key a route sends is a declared, required field, in the order the wire has it, and an undeclared key
is a validation error: a service dict that grows a key fails the tests (a 500) instead of the schema drifting
from the wire or FastAPI silently dropping the key. Nullable fields stay required, so nulls are still sent.

    >>> SearchResponse.model_validate({"results": [], "warnings": []}).model_dump()
    {'results': [], 'warnings': []}
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from almanac.core import search_filter as limits
from almanac.core.search_filter import SearchFilter
from almanac.core.types import SourceKind


class ResponseModel(BaseModel):
    """Base of the response models: no undeclared key passes (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(ResponseModel):
    """What went wrong and what to do next."""

    type: str = Field(examples=["not_found"], description="machine-readable error type")
    message: str = Field(examples=["no collection 'x'; run `almanac ingest PATH ...` first"])


class ErrorResponse(ResponseModel):
    """The one error shape, for every status (server/http/error_responses.py)."""

    error: ErrorDetail


_ERRORS: dict[int, str] = {
    400: "Invalid request or over a server limit (invalid_request, limit_exceeded, unknown_table)",
    401: "Missing, unknown or revoked API key (unauthorized)",
    403: "The key's scope or collection does not allow this call (forbidden)",
    404: "No such collection, document, job, adapter or source (not_found)",
    409: "The index does not match the catalog, or the writer lock is held (index_mismatch, locked)",
    413: "Body or uploaded file over the size limit (payload_too_large, file_too_large)",
    422: "The body or a parameter does not match the schema (validation_error)",
    429: "The model queue is full or a rate limit was reached; retry after the Retry-After header's seconds "
    "(overloaded)",
    500: "The chat model failed, or an unexpected error (model_error, internal_error)",
    502: "The source database could not be read (source_unavailable)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` declaring ErrorResponse for each status.

    >>> error_responses(404)[404]["model"].__name__
    'ErrorResponse'
    """
    return {status: {"model": ErrorResponse, "description": _ERRORS[status]} for status in statuses}


def streamed_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` documenting a 200 that is JSON, or server-sent events with `stream: true`.

    A StreamingResponse bypasses the response model, so only `responses` can show it in the schema.

        >>> list(streamed_responses("The answer")[200]["content"])
        ['text/event-stream']
    """
    event = {  # one server-sent event, as clients parse it; `data` is a JSON object
        "type": "object",
        "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
    }
    return {200: {"description": description, "content": {"text/event-stream": {"schema": event}}}}


def _iso_text(value: object) -> object:
    """Times come as ISO 8601 text, as the schema says (pydantic alone takes a number as epoch seconds)."""
    if not isinstance(value, str | datetime):
        raise ValueError("give the time as ISO 8601 text, e.g. 2026-01-01T00:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_text)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=limits.FIELD_KEY_MAX)]
FieldValue = Annotated[str, StringConstraints(max_length=limits.FIELD_VALUE_MAX)] | int | float | bool


class SearchFilterBody(BaseModel):
    """Conditions every source must meet (all of them), applied inside the search, so a filtered query still
    gets top_k sources when that many pass. Row fields match the column's text as the row shows it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "row", "table": "bikes", "fields": {"color": "red"}},
                {"source_prefix": "/srv/docs/handbook/", "ingested_after": "2026-01-01T00:00:00Z"},
            ]
        },
    )
    kind: SourceKind | None = Field(None, description="only document chunks, or only database rows")
    source_prefix: str | None = Field(
        None,
        min_length=1,
        max_length=limits.PREFIX_MAX,
        description="only sources that start with this text (case-sensitive)",
        examples=["/srv/docs/handbook/", "db://shop/"],
    )
    table: str | None = Field(
        None, min_length=1, max_length=limits.TABLE_MAX, description="only rows of this table"
    )
    ingested_after: IsoTime | None = Field(
        None,
        description="only content ingested at or after this time (ISO 8601; no zone: UTC)",
        examples=["2026-01-01T00:00:00Z"],
    )
    ingested_before: IsoTime | None = Field(
        None,
        description="only content ingested before this time (ISO 8601; no zone: UTC)",
        examples=["2099-01-01T00:00:00Z"],
    )
    fields: dict[FieldName, FieldValue] = Field(
        default_factory=dict,
        max_length=limits.FIELDS_MAX,
        description="only rows whose columns hold these values",
        examples=[{"color": "red", "weight_kg": 12.5}],
    )

    def to_filter(self) -> SearchFilter | None:
        """The core filter, None when it sets no condition; contradictions raise InputError (a 400)."""
        return SearchFilter.of(
            kind=self.kind,
            source_prefix=self.source_prefix,
            table=self.table,
            ingested_after=self.ingested_after,
            ingested_before=self.ingested_before,
            fields=self.fields,
        )


class SourceOut(ResponseModel):
    """A retrieved source as clients see it (core.types.Hit.as_json)."""

    id: int = Field(description="chunk id")
    kind: SourceKind = Field(description="a document chunk or a database row")
    source: str = Field(examples=["docs/volcanoes.md", "db://shop/bikes/id=1"])
    locator: str = Field(description="heading path, page or row key in the source", examples=["Volcanoes"])
    text: str
    score: float = Field(description="fused retrieval score (higher is better)")


class ClaimOut(ResponseModel):
    """One sentence of the answer and the sources (1-based) that support it."""

    text: str
    sources: list[int]
    supported: bool


class Usage(ResponseModel):
    """Token counts, OpenAI-style."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ToolCallOut(ResponseModel):
    """A lookup the chat model called while answering (a refused call has ok false and the reason)."""

    name: str = Field(examples=["count"], description="lookup, count, min or max; 'invalid': unparsable")
    arguments: dict[str, Any] = Field(examples=[{"table": "shop.bikes", "where": {"colour": "slate"}}])
    ok: bool
    error: str | None = Field(description="why the call was refused; null: it ran")
    source: str | None
    table: str | None
    rows: list[dict[str, Any]] = Field(description="rows returned by lookup (also listed as sources)")
    value: Any = Field(description="the count, min or max; null for lookup")


class QueryResponse(ResponseModel):
    """POST /v1/query, not streamed: the answer with its sources and checked citations."""

    answer: str = Field(examples=["Mount Kessik last erupted in 1821 [1]."])
    sources: list[SourceOut] = Field(description="the sources shown to the model; source n is element n-1")
    cited: list[int] = Field(description="1-based numbers of the sources that support the answer")
    model: str
    adapter: str | None = Field(description="the LoRA adapter used; null: the base model")
    usage: Usage
    timings: dict[str, float] = Field(
        description="seconds per stage", examples=[{"retrieval": 0.012, "generation": 0.84}]
    )
    supported: bool = Field(description="every claim of the answer has a supporting source")
    refused: bool = Field(description="the answer is that the sources do not answer the question")
    claims: list[ClaimOut]
    warnings: list[str] = Field(
        description="sources left out, e.g. rows of a source database that was down", examples=[[]]
    )
    tool_calls: list[ToolCallOut] = Field(
        description="lookups the model called (answer.max_tool_calls); their rows follow the retrieved "
        "sources, with id 0"
    )


class SearchResponse(ResponseModel):
    """POST /v1/search: the fused hits, best first."""

    results: list[SourceOut]
    warnings: list[str] = Field(
        description="sources left out, e.g. rows of a source database that was down", examples=[[]]
    )


class LookupResponse(ResponseModel):
    """POST /v1/lookup: the rows found and where they came from."""

    source: str = Field(description="registered source name")
    table: str
    rows: list[dict[str, Any]] = Field(examples=[[{"id": 1, "name": "Trail 29", "color": "green"}]])
    count: int
    limit: int = Field(description="the limit applied (the request's, capped at server.lookup_row_cap)")


class AdapterOut(ResponseModel):
    """A complete adapter's manifest summary."""

    name: str
    base_model: str
    created_at: str = Field(description="ISO 8601")
    validation_loss: float | None
    evaluation: dict[str, bool | int | float | str] | None = Field(description="scalar evaluation metrics")
    default: bool = Field(description="whether this adapter is the default")


class AdaptersResponse(ResponseModel):
    """GET /v1/adapters."""

    default: str | None = Field(description="the default adapter; null: the base model")
    adapters: list[AdapterOut]


class AdapterPromoteResponse(ResponseModel):
    """POST /v1/adapters/{name}/promote."""

    default: str
    previous: str | None = Field(description="the default before this promotion; null: the base model")


class AdapterDefaultResponse(ResponseModel):
    """POST /v1/adapters/rollback."""

    default: str | None = Field(description="the default now; null: the base model")


class HealthResponse(ResponseModel):
    """GET /healthz."""

    status: Literal["ok"]


class ReadinessResponse(ResponseModel):
    """GET /readyz (200 when ready; 503 while loading, after a failed warm-up, or while the catalog database
    cannot be reached: status "unavailable")."""

    status: Literal["loading", "ready", "failed", "unavailable"]
    detail: str = Field(examples=["models loaded"])
