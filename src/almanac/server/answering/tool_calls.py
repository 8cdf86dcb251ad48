"""The tool loop: the chat model may call the guarded lookups before it answers.

When the question's collection holds rows of allow-listed tables (``server.lookup_tables``), the prompt
offers the lookup tools (core/lookup_tool.py). Each reply that holds a ``<tool_call>`` is checked and run by
the same guard as /v1/lookup, scoped to the collection (server/retrieval/lookup_tools.py); the result goes
back as a `tool` message (data, never instructions) and the model is asked again. At most
``answer.max_tool_calls`` calls run per answer (0: no tools); after that the model must answer. The calls
and their rows are kept on the Prepared, so the answer lists them and cites the rows as sources.

Streamed answers take the same loop: each reply streams, but one that opens as a call (``<tool_call>`` or a
bare ``{``) is held back until it ends; a reply that opens otherwise is the answer and its pieces pass on
as they come.

    loop = ToolCalls(settings, sources)
    completion = loop.complete(chat, prepared)   # prepared.tool_calls, prepared.hits += returned rows
    for piece in loop.stream(chat, prepared, cancel, sent): ...   # sent: every message list sent
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Sequence
from functools import partial

from almanac.core.lookup_tool import find_call, offer_tools, strip_calls, tool_message, tool_schemas
from almanac.core.ports import ChatModel
from almanac.core.prompt import NO_ANSWER
from almanac.core.settings import Settings
from almanac.core.types import ChatMessage, Completion
from almanac.server.answering.answer import Prepared
from almanac.server.retrieval.lookup_tools import LookupTools, ToolOutcome
from almanac.server.retrieval.source_registry import SourceRegistry

log = logging.getLogger(__name__)
_CALL_OPENING = "<tool_call>"
_ANSWERED, _CALLING_ENDS, _ASK_AGAIN = "answered", "calling ends", "ask again"  # a turn's outcome


def _may_be_call(text: str) -> bool:
    """Whether a reply that begins with `text` may still turn out to be a tool call."""
    start = text.lstrip()
    return start.startswith((_CALL_OPENING, "{")) or _CALL_OPENING.startswith(start)


def _answer_or_call(pieces: Iterator[str]) -> Generator[str, None, str]:
    """Passes a reply's pieces on once it cannot be a call; returns a reply held back whole ("" when its
    pieces were passed on)."""
    held, passing = "", False
    for piece in pieces:
        if passing:
            yield piece
            continue
        held += piece
        if not _may_be_call(held):
            passing = True
            yield held
    return "" if passing else held


class ToolCalls:
    """Offers the lookup tools to the chat model and runs its calls, bounded per answer."""

    def __init__(self, settings: Settings, sources: SourceRegistry) -> None:
        self.settings, self.sources = settings, sources
        self.max_calls = settings.answer.max_tool_calls

    def tools_for(self, collection: str) -> LookupTools | None:
        """The guard scoped to `collection`; None when tools are off or no allow-listed table is open."""
        if self.max_calls == 0 or not self.settings.server.lookup_tables:
            return None
        tools = LookupTools(
            self.settings.server, self.sources, partial(self.sources.catalog.holds_rows, collection)
        )
        return tools if tools.tables() else None

    def complete(self, chat: ChatModel, prepared: Prepared) -> Completion:
        """The model's final reply, after at most `max_calls` tool calls (blocking; runs on the queue).

        The calling ends at the limit, at a reply without a call, or at a call the model already made (small
        models repeat a call instead of reading its result). A reply that is still a call is then asked for
        again with no tools offered, the results in the conversation, so the model answers in words.
        """
        tools = self.tools_for(prepared.collection)
        if tools is None:
            return chat.complete(prepared.messages, prepared.max_tokens, prepared.adapter)
        offered = offer_tools(prepared.messages, tool_schemas(tools.tables()))
        exchange: list[ChatMessage] = []  # the calls made and their results, in order
        total, seen = Completion(""), set[str]()
        while True:
            completion = self._add(
                total, chat.complete([*offered, *exchange], prepared.max_tokens, prepared.adapter)
            )
            step = self._take_call(tools, prepared, completion.text, seen, exchange)
            if step == _ANSWERED:
                return total
            if step == _CALLING_ENDS:
                break
        final = chat.complete([*prepared.messages, *exchange], prepared.max_tokens, prepared.adapter)
        self._add(total, final)
        total.text = strip_calls(final.text) or NO_ANSWER
        return total

    def stream(
        self,
        chat: ChatModel,
        prepared: Prepared,
        cancel: threading.Event,
        sent: list[Sequence[ChatMessage]],
    ) -> Iterator[str]:
        """The final answer's pieces, after at most `max_calls` tool calls made as in `complete`; every
        message list sent to the model is appended to `sent` (for the prompt's token count)."""
        tools = self.tools_for(prepared.collection)
        if tools is None:
            sent.append(prepared.messages)
            yield from chat.stream(prepared.messages, prepared.max_tokens, prepared.adapter, cancel)
            return
        offered = offer_tools(prepared.messages, tool_schemas(tools.tables()))
        exchange: list[ChatMessage] = []
        seen: set[str] = set()
        while True:
            sent.append([*offered, *exchange])
            held = yield from _answer_or_call(
                chat.stream(sent[-1], prepared.max_tokens, prepared.adapter, cancel)
            )
            if not held or cancel.is_set():  # answered (its pieces passed on), or the client left
                return
            step = self._take_call(tools, prepared, held, seen, exchange)
            if step == _ANSWERED:
                yield held
                return
            if step == _CALLING_ENDS:
                break
        sent.append([*prepared.messages, *exchange])
        held = yield from _answer_or_call(
            chat.stream(sent[-1], prepared.max_tokens, prepared.adapter, cancel)
        )
        if held:
            yield strip_calls(held) or NO_ANSWER

    def _take_call(
        self, tools: LookupTools, prepared: Prepared, reply: str, seen: set[str], exchange: list[ChatMessage]
    ) -> str:
        """One turn of the loop, shared by `complete` and `stream`: _ANSWERED when `reply` makes no call,
        _CALLING_ENDS at the limit or a repeated call, else _ASK_AGAIN once the call ran and it and its
        result joined `exchange`."""
        call = find_call(reply)
        if call is None:
            return _ANSWERED
        if len(prepared.tool_calls) >= self.max_calls or call in seen:
            return _CALLING_ENDS
        seen.add(call)
        outcome = tools.run(reply)
        if outcome is None:
            return _ANSWERED
        self._record(prepared, outcome)
        left = self.max_calls - len(prepared.tool_calls)
        exchange += [ChatMessage("assistant", reply), self._result(outcome, left)]
        return _ASK_AGAIN

    @staticmethod
    def _add(total: Completion, completion: Completion) -> Completion:
        """Count `completion`'s tokens into `total`, take its text; returns `completion`."""
        total.prompt_tokens += completion.prompt_tokens
        total.completion_tokens += completion.completion_tokens
        total.text, total.finish_reason = completion.text, completion.finish_reason
        return completion

    @staticmethod
    def _result(outcome: ToolOutcome, left: int) -> ChatMessage:
        """What the model is shown: the rows or value, or why the call was refused, and what may follow."""
        result = outcome.as_json()
        del result["arguments"]
        if left <= 0:
            result["note"] = "no more tool calls; answer now from the context and this result"
        return tool_message(result)

    @staticmethod
    def _record(prepared: Prepared, outcome: ToolOutcome) -> None:
        prepared.tool_calls.append(outcome.as_json())
        prepared.hits.extend(outcome.hits)
        log.info(
            "event=tool_call name=%s ok=%s table=%s rows=%d error=%s",
            outcome.name,
            outcome.ok,
            outcome.table or "-",
            len(outcome.rows),
            outcome.error or "-",
        )
