"""GET /healthz (the process is alive), GET /readyz (models and index loaded), GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from almanac.server.http.error_responses import CATALOG_ERRORS, CATALOG_RETRY_S
from almanac.server.http.metrics import CONTENT_TYPE
from almanac.server.routes.auth import ReadKey
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.schemas import HealthResponse, ReadinessResponse, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """Alive: the process serves HTTP (no dependency is checked)."""
    return HealthResponse(status="ok")


# The JSONResponse is sent as is (the model only documents it): 503 carries the same body as 200.
@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Loading, or the warm-up failed"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once the warm-up loaded the models and the default collection, while the catalog database
    answers; 503 before, after a failure, or while the catalog cannot be reached."""
    readiness = services.readiness
    if not readiness.ready:
        return JSONResponse(readiness.as_json(), status_code=503)
    try:
        await run_in_threadpool(services.catalog.ping)
    except CATALOG_ERRORS:
        body = {"status": "unavailable", "detail": "the catalog database cannot be reached"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(CATALOG_RETRY_S)})
    return JSONResponse(readiness.as_json())


# response_class=Response: no JSON body is declared for 200, and the JSON errors keep application/json.
_PROMETHEUS = {
    "description": "Prometheus text format",
    "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
}


@router.get("/metrics", response_class=Response, responses={200: _PROMETHEUS, **error_responses(401, 403)})
async def metrics(_principal: ReadKey, services: ServicesDep) -> Response:
    """Prometheus text format (needs a read key once keys exist)."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
