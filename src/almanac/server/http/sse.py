r"""Server-sent events: the wire format, and following a client so a disconnect cancels its generation.

>>> sse_event({"text": "Hi"}, "token")
b'event: token\ndata: {"text": "Hi"}\n\n'
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")
KEEP_ALIVE = b": keep-alive\n\n"  # a comment line: clients ignore it, a dead connection fails on it
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(data: object, event: str | None = None) -> bytes:
    """One event; `data` is JSON-encoded on one line (a str is sent as is, e.g. ``[DONE]``)."""
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {body}\n\n".encode()


async def follow_client(
    request: Request, events: AsyncGenerator[T, None], cancel: threading.Event
) -> AsyncIterator[T]:
    """Pass `events` through until the client disconnects; then set `cancel` and close the source.

    The source yields regularly (None on idle ticks), so a client that leaves is noticed within a tick even
    while the model is busy; if the server cancels the response task instead, `finally` still cancels.
    """
    try:
        async for item in events:
            if await request.is_disconnected():
                cancel.set()
                return
            yield item
    finally:
        await events.aclose()
