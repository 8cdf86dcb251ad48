"""Watching a client while a non-streaming request waits for the model: a client that leaves drops its
queued generation instead of leaving it to run for nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")
_POLL_S = 0.25


class ClientGoneError(Exception):
    """The client disconnected before its answer was ready (answered 499, which nobody reads)."""


async def run_while_connected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the client disconnects (then raises ClientGoneError)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise ClientGoneError("client disconnected")
    finally:
        if not task.done():
            task.cancel()
