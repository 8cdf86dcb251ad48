"""The streamed answer's worker side: generation runs on the model queue's thread and hands its pieces to
the event loop through an asyncio queue; the request side reads them with a tick, so it can check the
client while the model is silent.

    pieces = asyncio.Queue[str | End]()
    slot.submit(lambda: stream_job(chat, tools, prepared, cancel, loop, pieces))
    while not isinstance(item := await next_piece(pieces), End): ...   # str, or None after a tick
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from almanac.core.ports import ChatModel, TokenCounter
from almanac.core.types import ChatMessage
from almanac.server.answering.answer import Prepared
from almanac.server.answering.citation_stream import CitationFilter
from almanac.server.answering.tool_calls import ToolCalls

TICK_S = 0.25  # a stream yields None after this long without a piece, so callers can check the client


@dataclass(slots=True)
class End:
    """The last item of a stream: how long it took, its error if any, the text and its token counts."""

    seconds: float
    error: BaseException | None = None
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_s: float = 0.0


def push(loop: asyncio.AbstractEventLoop, out: asyncio.Queue[str | End], item: str | End) -> bool:
    """Hand an item to the event loop; False when the loop is gone (nobody is listening any more)."""
    try:
        loop.call_soon_threadsafe(out.put_nowait, item)
    except RuntimeError:
        return False
    return True


async def next_piece(pieces: asyncio.Queue[str | End]) -> str | End | None:
    """The next item, or None when none came within TICK_S."""
    try:
        return await asyncio.wait_for(pieces.get(), TICK_S)
    except TimeoutError:
        return None


class StreamingChat(ChatModel, TokenCounter, Protocol):
    """What streaming needs of the chat model: the ChatModel port and token counts."""


def stream_job(
    chat: StreamingChat,
    tools: ToolCalls | None,
    prepared: Prepared,
    cancel: threading.Event,
    loop: asyncio.AbstractEventLoop,
    out: asyncio.Queue[str | End],
) -> None:
    """Runs on the queue's worker: pushes the answer's pieces (after any tool calls) to the event loop until
    done or cancelled, then the token counts (counted here, off the event loop)."""
    started, parts, error, first = time.perf_counter(), [], None, 0.0
    sent: list[Sequence[ChatMessage]] = []
    markers: CitationFilter | None = None  # made at the first piece: tool calls may add row sources first
    try:
        if tools is not None:
            pieces = tools.stream(chat, prepared, cancel, sent)
        else:
            sent.append(prepared.messages)
            pieces = chat.stream(prepared.messages, prepared.max_tokens, prepared.adapter, cancel)
        for piece in pieces:
            first = first or time.perf_counter() - started
            markers = markers or CitationFilter(len(prepared.hits))
            parts.append(piece)
            clean = markers.feed(piece)
            if cancel.is_set() or (clean and not push(loop, out, clean)):
                cancel.set()
                return
        if markers is not None and (rest := markers.flush()):
            push(loop, out, rest)
    except Exception as exc:  # handed to the request, which reports it
        error = exc
    seconds = time.perf_counter() - started
    prompt = "\n".join(m.content for messages in sent for m in messages)
    text = "".join(parts)
    counts = (chat.count_tokens(prompt), chat.count_tokens(text)) if error is None else (0, 0)
    push(loop, out, End(seconds, error, text, *counts, first))
