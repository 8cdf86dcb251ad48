"""Request body size limit (pure ASGI, so streaming responses and disconnect detection are untouched).

A declared Content-Length over the limit is refused before the app runs; a chunked body is counted as it is
read and stops at the limit. Both answer 413 in the one error shape. Uploads get their own, larger limit by
path prefix (``{"/v1/documents": max_upload_bytes}``).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from almanac.server.http.error_responses import error_response


class BodyTooLargeError(HTTPException):
    """Raised while reading a body past the limit; FastAPI re-raises HTTPExceptions from body parsing."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes; send less (server.max_body_bytes)")


class BodyLimitMiddleware:
    """413 for bodies over `default_limit` bytes, or over the limit of the longest matching path prefix."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The byte limit that applies to a path."""
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(413, "payload_too_large", BodyTooLargeError(limit).detail)(
                scope, receive, send
            )
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLargeError as exc:
            if started:
                raise
            await error_response(413, "payload_too_large", exc.detail)(scope, receive, send)
