"""Errors to HTTP in one place: core errors, validation errors and HTTP errors all leave as one JSON shape.

    {"error": {"type": "not_found", "message": "no collection 'x'; run `almanac ingest PATH ...` first"}}

Statuses: InputError 400 (LimitError, a request over a server limit, too), schema violations 422, body over
the size limit 413, AuthError 401, ForbiddenError 403, NotFoundError 404, IndexMismatchError and LockedError
409, OverloadedError 429 with Retry-After (ModelUnavailableError, a model server that is down or busy, 503
with Retry-After), SourceError 502, ModelError and ConfigError 500. A catalog database that cannot be
reached (SQLAlchemy's OperationalError or InterfaceError: down, restarting, or the network gone) is 503 with
Retry-After; the connection pool reconnects by itself once it is back. Anything else is a 500 whose message
points at the server log; no traceback ever reaches a client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from almanac.core.errors import (
    AlmanacError,
    AuthError,
    ConfigError,
    FileTooLargeError,
    ForbiddenError,
    IndexMismatchError,
    InputError,
    LimitError,
    LockedError,
    ModelError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    SourceError,
    UnknownTableError,
    UnsupportedFileError,
)
from almanac.server.http.client_watch import ClientGoneError

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status and type.
_STATUS: tuple[tuple[type[AlmanacError], int, str], ...] = (
    (LimitError, 400, "limit_exceeded"),
    (FileTooLargeError, 413, "file_too_large"),
    (UnsupportedFileError, 415, "unsupported_file"),
    (InputError, 400, "invalid_request"),
    (ForbiddenError, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (NotFoundError, 404, "not_found"),
    (UnknownTableError, 400, "unknown_table"),
    (SourceError, 502, "source_unavailable"),
    (IndexMismatchError, 409, "index_mismatch"),
    (LockedError, 409, "locked"),
    (ModelUnavailableError, 503, "model_unavailable"),
    (OverloadedError, 429, "overloaded"),
    (ModelError, 500, "model_error"),
    (ConfigError, 500, "config_error"),
)
_HTTP_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "overloaded",
}


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    """The one error shape."""
    return {"error": {"type": kind, "message": message}}


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSONResponse in the one error shape."""
    return JSONResponse(error_body(kind, message), status_code=status, headers=headers)


def classify(exc: AlmanacError) -> tuple[int, str]:
    """(HTTP status, error type) of a core error."""
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal_error"


def almanac_error_response(exc: AlmanacError) -> JSONResponse:
    """The response for a core error, with Retry-After for an overloaded queue or model server and a
    challenge for 401."""
    status, kind = classify(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, int(exc.retry_after)))
    elif status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        log.warning("event=request_failed type=%s reason=%s", kind, exc)
    return error_response(status, kind, str(exc), headers or None)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts) + " (fix the field and retry)"


async def _on_almanac_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlmanacError)
    return almanac_error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", _validation_message(exc))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else kind.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first matching route's methods
        headers["Allow"] = allowed_methods(request)
    return error_response(exc.status_code, kind, message, headers or None)


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path (GET, POST ...), for a 405's Allow header."""
    routes = request.app.router.routes
    allowed = (
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )
    return ", ".join(allowed)


async def _on_client_gone(_request: Request, _exc: Exception) -> Response:
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it, metrics do


CATALOG_RETRY_S = 5
CATALOG_ERRORS = (OperationalError, InterfaceError)  # the catalog database is down or unreachable


async def _on_catalog_down(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("event=catalog_unavailable reason=%s", str(exc).splitlines()[0][:300])
    return error_response(
        503,
        "catalog_unavailable",
        "the catalog database cannot be reached; retry shortly, and check that the database at "
        "ALMANAC_CATALOG__URL is running (the server reconnects by itself)",
        {"Retry-After": str(CATALOG_RETRY_S)},
    )


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("event=unexpected_error type=%s", type(exc).__name__)
    return error_response(500, "internal_error", "internal server error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on the app (the one place statuses are decided)."""
    app.add_exception_handler(AlmanacError, _on_almanac_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ClientGoneError, _on_client_gone)
    for error in CATALOG_ERRORS:
        app.add_exception_handler(error, _on_catalog_down)
    app.add_exception_handler(Exception, _on_unexpected)
