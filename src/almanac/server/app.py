"""The one composition root of the HTTP server.

    app = create_app()                                # real services from the environment's settings
    app = create_app(services=Services.assemble(...))  # tests: fakes inside

The lifespan starts the warm-up (models, the default collection's snapshot) in a thread, so /healthz answers
at once and /readyz turns 200 when loading is done, and starts the job runner. On shutdown (SIGTERM: uvicorn
first stops accepting and lets in-flight requests finish) it stops the job runner between items and waits
for the model queue to drain.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from almanac import __version__
from almanac.core.settings import Settings
from almanac.server.http.body_limit import BodyLimitMiddleware
from almanac.server.http.error_responses import install_error_handlers
from almanac.server.http.metrics import MetricsMiddleware
from almanac.server.http.request_id import RequestIdMiddleware
from almanac.server.routes import adapters, documents, health, jobs, lookup, openai, query
from almanac.server.services import Services, build_services
from almanac.server.web import page

log = logging.getLogger(__name__)
DRAIN_TIMEOUT_S = 30.0
UPLOAD_PATHS = ("/v1/documents",)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    services.start_warm_up()
    services.jobs.start()
    log.info("event=server_started")
    try:
        yield
    finally:
        await run_in_threadpool(services.jobs.stop)
        drained = await run_in_threadpool(services.answering.queue.drain, DRAIN_TIMEOUT_S)
        if app.state.owns_services:
            await run_in_threadpool(services.close)
        log.info("event=server_stopped queue_drained=%s", drained)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The FastAPI app over `services` (built from `settings` when not given)."""
    owns = services is None
    if services is None:
        services = build_services(settings or Settings())
    server = services.settings.server
    app = FastAPI(
        title="Almanac",
        version=__version__,
        summary="Retrieval-augmented answers with checked citations over your documents and databases",
        lifespan=_lifespan,
    )
    app.state.services, app.state.owns_services = services, owns
    install_error_handlers(app)
    for module in (query, openai, health, documents, jobs, lookup, adapters, page):
        app.include_router(module.router)
    upload_limit = server.max_upload_bytes + server.max_body_bytes  # files plus multipart framing and fields
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=server.max_body_bytes,
        limits=dict.fromkeys(UPLOAD_PATHS, upload_limit),
    )
    if server.cors_origins:  # none by default: no CORS headers, browsers refuse cross-origin calls
        app.add_middleware(
            CORSMiddleware,
            allow_origins=server.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)  # counts 413s too
    app.add_middleware(RequestIdMiddleware)  # outermost: every response and log line has the id
    return app
