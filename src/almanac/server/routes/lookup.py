"""POST /v1/lookup: equality lookups on allow-listed tables, for the application layer (no SQL text)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from almanac.server.retrieval.table_lookup import TableLookup
from almanac.server.routes.auth import ReadKey
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.schemas import LookupResponse, error_responses

router = APIRouter(
    prefix="/v1", tags=["lookup"], responses=error_responses(400, 401, 403, 404, 413, 422, 429, 502)
)

Value = str | int | float | bool | None


class LookupRequest(BaseModel):
    """{table, where: {column: value}, limit}: rows whose columns equal the values."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"table": "bikes", "where": {"color": "green"}, "limit": 10},
                {"table": "shop.bikes", "where": {"id": 1}},
            ]
        },
    )

    table: str = Field(min_length=1, max_length=256, description="'table' or 'source.table'")
    where: dict[Annotated[str, Field(min_length=1, max_length=128)], Value] = Field(
        default_factory=dict, max_length=32
    )
    limit: int = Field(10, ge=1, le=100_000, description="capped at server.lookup_row_cap")


@router.post("/lookup", response_model=LookupResponse)
async def lookup(body: LookupRequest, principal: ReadKey, services: ServicesDep) -> LookupResponse:
    """Rows of an allow-listed table; 400 naming the allowed tables for anything else.

    A key bound to a collection may look up only tables whose rows were ingested into that collection.
    """
    visible = (
        None if principal.collection is None else partial(services.catalog.holds_rows, principal.collection)
    )
    service = TableLookup(services.settings.server, services.sources, visible)
    found = await run_in_threadpool(service.lookup, body.table, body.where, body.limit)
    return LookupResponse(
        source=found.source, table=found.table, rows=found.rows, count=len(found.rows), limit=found.limit
    )
