"""GET /healthz (the process is alive), GET /readyz (models and index loaded), GET /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from almanac.server.http.metrics import CONTENT_TYPE
from almanac.server.routes.auth import ReadKey
from almanac.server.routes.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Alive: the process serves HTTP (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 once the warm-up loaded the models and the default collection; 503 before or after a failure."""
    readiness = services.readiness
    return JSONResponse(readiness.as_json(), status_code=200 if readiness.ready else 503)


@router.get("/metrics")
async def metrics(_principal: ReadKey, services: ServicesDep) -> Response:
    """Prometheus text format (needs a read key once keys exist)."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
