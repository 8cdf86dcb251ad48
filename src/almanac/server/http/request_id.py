"""Request ids (pure ASGI): every request gets one, every log line inside it carries it.

A client's `X-Request-ID` is kept when it is 1 to 64 characters of ``[A-Za-z0-9._-]`` (so it cannot forge
log lines or headers); otherwise a new uuid4 hex is used. The id is set in the context variable that the
logging filter and the JSON formatter read (almanac.core.log_format) and returned in the `X-Request-ID`
response header.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from almanac.core.log_format import request_id_var

HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The client's id when valid, else a new one.

    >>> request_id_from("abc-123"), len(request_id_from("bad id\\nX-Evil: 1"))
    ('abc-123', 32)
    """
    if header is not None and _VALID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets the request id for the request's context and echoes it in the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(HEADER))
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
