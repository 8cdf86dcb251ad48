"""GET /v1/adapters, POST /v1/adapters/{name}/promote, POST /v1/adapters/rollback (admin keys only).

Promotion and rollback move the registry's default-adapter pointer; the server reads it per request, so the
next answer uses the new default without a restart.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from almanac.core.adapter_manifest import AdapterManifest
from almanac.server.routes.auth import AdminKey
from almanac.server.routes.deps import ServicesDep

router = APIRouter(prefix="/v1", tags=["adapters"])


def _summary(manifest: AdapterManifest, default: str | None) -> dict[str, Any]:
    evaluation = manifest.evaluation or {}
    scalars = {k: v for k, v in evaluation.items() if isinstance(v, int | float | str | bool)}
    return {
        "name": manifest.name,
        "base_model": manifest.base_model,
        "created_at": manifest.created_at,
        "validation_loss": manifest.validation_loss,
        "evaluation": scalars or None,
        "default": manifest.name == default,
    }


@router.get("/adapters")
async def list_adapters(_principal: AdminKey, services: ServicesDep) -> dict[str, Any]:
    """Complete adapters with a manifest summary, and which one is the default."""
    registry = services.registry
    default = await run_in_threadpool(registry.default)
    manifests = await run_in_threadpool(registry.list)
    return {"default": default, "adapters": [_summary(m, default) for m in manifests]}


@router.post("/adapters/{name}/promote")
async def promote_adapter(
    name: str,
    _principal: AdminKey,
    services: ServicesDep,
    force: Annotated[bool, Query(description="skip the evaluation checks")] = False,
) -> dict[str, Any]:
    """Make `name` the default adapter (refused when its evaluation is worse, unless force)."""
    previous = await run_in_threadpool(services.registry.promote, name, force)
    return {"default": name, "previous": previous}


@router.post("/adapters/rollback")
async def rollback_adapter(_principal: AdminKey, services: ServicesDep) -> dict[str, Any]:
    """Return to the default before the last promotion (null: the base model)."""
    default = await run_in_threadpool(services.registry.rollback)
    return {"default": default}
