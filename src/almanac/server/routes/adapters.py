"""GET /v1/adapters, POST /v1/adapters/{name}/promote, POST /v1/adapters/rollback (admin keys only).

Promotion and rollback move the registry's default-adapter pointer; the server reads it per request, so the
next answer uses the new default without a restart. With a model server (ALMANAC_CHAT__BACKEND=openai), it
is made to serve the adapter (vLLM loads it at run time) before the pointer moves, unless `force`. The
default serves every collection, so an admin key bound to one collection may list adapters but not move the
default.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from almanac.core.adapter_manifest import AdapterManifest
from almanac.core.audit_log import audit
from almanac.core.errors import ForbiddenError
from almanac.server.keys.principal import Principal
from almanac.server.routes.auth import AdminKey
from almanac.server.routes.deps import ServicesDep
from almanac.server.routes.params import AdapterName
from almanac.server.routes.schemas import (
    AdapterDefaultResponse,
    AdapterOut,
    AdapterPromoteResponse,
    AdaptersResponse,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["adapters"], responses=error_responses(401, 403, 429))


def _check_unbound(principal: Principal) -> None:
    """ForbiddenError for a key bound to one collection: the default adapter answers every collection."""
    if principal.bound:
        raise ForbiddenError(
            f"key {principal.key_prefix} is bound to collection {principal.collection!r}, but the default "
            "adapter serves every collection; use an admin key bound to no collection (`almanac keys create "
            "--scope admin`)"
        )


def _summary(manifest: AdapterManifest, default: str | None) -> AdapterOut:
    evaluation = manifest.evaluation or {}
    scalars = {k: v for k, v in evaluation.items() if isinstance(v, int | float | str | bool)}
    return AdapterOut(
        name=manifest.name,
        base_model=manifest.base_model,
        created_at=manifest.created_at,
        validation_loss=manifest.validation_loss,
        evaluation=scalars or None,
        default=manifest.name == default,
    )


@router.get("/adapters", response_model=AdaptersResponse)
async def list_adapters(_principal: AdminKey, services: ServicesDep) -> AdaptersResponse:
    """Complete adapters with a manifest summary, and which one is the default."""
    registry = services.registry
    default = await run_in_threadpool(registry.default)
    manifests = await run_in_threadpool(registry.list)
    return AdaptersResponse(default=default, adapters=[_summary(m, default) for m in manifests])


@router.post(
    "/adapters/{name}/promote",
    response_model=AdapterPromoteResponse,
    responses=error_responses(400, 404, 422),
)
async def promote_adapter(
    name: AdapterName,
    principal: AdminKey,
    services: ServicesDep,
    force: Annotated[bool, Query(description="skip the evaluation checks")] = False,
) -> AdapterPromoteResponse:
    """Make `name` the default adapter (refused when its evaluation is worse, unless force)."""
    _check_unbound(principal)
    if services.settings.chat.backend == "openai" and not force:  # the model server serves it first
        await run_in_threadpool(services.chat.ensure_adapter, name)
    previous = await run_in_threadpool(services.registry.promote, name, force)
    audit("adapter_promoted", principal.key_prefix or "anonymous", name=name, previous=previous, force=force)
    return AdapterPromoteResponse(default=name, previous=previous)


@router.post("/adapters/rollback", response_model=AdapterDefaultResponse, responses=error_responses(400))
async def rollback_adapter(principal: AdminKey, services: ServicesDep) -> AdapterDefaultResponse:
    """Return to the default before the last promotion (null: the base model)."""
    _check_unbound(principal)
    default = await run_in_threadpool(services.registry.rollback)
    audit("adapter_rolled_back", principal.key_prefix or "anonymous", default=default)
    return AdapterDefaultResponse(default=default)
