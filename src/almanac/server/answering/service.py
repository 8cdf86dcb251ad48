"""Answering: retrieve -> re-read live rows -> fenced prompt -> chat model (through the queue) -> citations.

    service = AnswerService(searcher.search, chat, ModelQueue(16), sources, settings, AdapterPolicy())
    answer = service.answer(Ask("How heavy is the Trail 29?"))   # blocking (CLI, evaluation)
    answer = await service.answer_async(Ask(...))                # the server: never blocks the event loop
    async for item in service.stream(Ask(...)): ...              # Prepared, text pieces, then the Answer

The adapter is the one asked for, else the `AdapterPolicy`'s choice (the server's: the collection's, else
the promoted default, read on every request so a promotion takes effect without a restart). Citations that
point at no source shown are removed; `Answer.cited` lists the sources the answer does cite.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from almanac.core.ports import AdapterLoader, ChatModel, TokenCounter
from almanac.core.prompt import NO_ANSWER, build_answer_messages, extract_citations
from almanac.core.search_filter import SearchFilter
from almanac.core.settings import Settings
from almanac.core.types import Completion, Hit
from almanac.server.answering.adapter_policy import AdapterPolicy
from almanac.server.answering.answer import Answer, Ask, Prepared, source_label, usage
from almanac.server.answering.focus import Focused, SourceFocus, standalone_query
from almanac.server.answering.limits import Limits
from almanac.server.answering.streaming import End, next_piece, stream_job
from almanac.server.answering.support import SupportChecker
from almanac.server.answering.tool_calls import ToolCalls
from almanac.server.chat.model_queue import ModelQueue, Slot
from almanac.server.http.rate_limit import ScopedBuckets
from almanac.server.retrieval.source_registry import SourceRegistry

log = logging.getLogger(__name__)


Search = Callable[[str, str, int, SearchFilter | None], list[Hit]]  # query, collection, top_k, where


class ReaderModel(ChatModel, TokenCounter, AdapterLoader, Protocol):
    """What answering needs of the chat model: the ChatModel port, token counts and adapter loading."""


class AnswerService:
    """Answers questions over a collection with the chat model; safe to call from many threads."""

    def __init__(
        self,
        search: Search,
        chat: ReaderModel,
        queue: ModelQueue,
        sources: SourceRegistry | None,
        settings: Settings,
        adapters: AdapterPolicy,
        focus: SourceFocus | None = None,
        support: SupportChecker | None = None,
        budgets: ScopedBuckets | None = None,
    ) -> None:
        self.search, self.chat, self.queue, self.sources = search, chat, queue, sources
        self.settings, self.limits, self.adapters = settings, Limits(settings.server), adapters
        self.focus, self.support = focus, support or SupportChecker()
        self.budgets = budgets  # generated tokens per caller; None: no budget
        self.relevance_floor = settings.answer.relevance_floor(settings.embedding.model)
        self.tools = ToolCalls(settings, sources) if sources is not None else None  # lookups the model calls

    def adapter_for(self, collection: str, requested: str | None) -> str | None:
        """The adapter a request runs with."""
        return self.adapters.choose(collection, requested)

    def prepare(self, ask: Ask) -> Prepared:
        """Check limits, retrieve, re-read rows, focus the sources and build the messages (blocking)."""
        question = self.limits.question(ask.question)
        collection = ask.collection or self.settings.default_collection
        k = self.limits.top_k(ask.top_k if ask.top_k is not None else self.settings.answer.sources)
        tokens = self.limits.max_tokens(ask.max_tokens or self.settings.chat.max_new_tokens)
        query = standalone_query(question, ask.history, self.settings.answer.history_turns)
        started = time.perf_counter()
        hits = self.search(query, collection, max(k, self.settings.answer.candidates), ask.where)
        retrieved = time.perf_counter()
        warnings: list[str] = []
        if self.sources is not None:
            hits = self.sources.refresh(hits, warnings)
        focused = self.focus.focus(query, hits, k) if self.focus else Focused(hits[:k], 1.0)
        hits = focused.hits
        messages = build_answer_messages(question, [(source_label(h), h.text) for h in hits])
        shown = messages[-1].content.count('<source id="')  # the prompt's budget may drop tail sources
        if ask.history:
            messages = [messages[0], *ask.history, messages[-1]]
        adapter = self.adapter_for(collection, ask.adapter)
        answerable = bool(hits) and focused.relevance >= self.relevance_floor
        if answerable:
            self.chat.ensure_adapter(adapter)  # an unknown adapter fails here, before any streaming
        timings = {"retrieval": retrieved - started, "prompt": time.perf_counter() - retrieved}
        return Prepared(
            question,
            collection,
            hits[:shown],
            messages,
            adapter,
            tokens,
            timings,
            focused.relevance,
            answerable,
            warnings,
        )

    def finish(
        self, prepared: Prepared, completion: Completion, generation_s: float, queue_s: float
    ) -> Answer:
        """Validate citations, check each claim against the sources and assemble the answer."""
        text, marked = extract_citations(completion.text.strip(), len(prepared.hits))
        support = self.support.check(text, [h.text for h in prepared.hits], marked)
        text = support.with_markers(text)
        timings = {**prepared.timings, "queue": queue_s, "generation": generation_s}
        log.info(
            "event=answered collection=%s sources=%d cited=%s supported=%s adapter=%s tokens=%d "
            "retrieval_s=%.3f generation_s=%.3f",
            prepared.collection,
            len(prepared.hits),
            ",".join(map(str, support.cited)) or "-",
            support.supported,
            prepared.adapter or "-",
            completion.completion_tokens,
            timings["retrieval"],
            generation_s,
        )
        return Answer(
            text,
            prepared.hits,
            support.cited,
            self.chat.name,
            prepared.adapter,
            usage(completion.prompt_tokens, completion.completion_tokens),
            timings,
            completion.finish_reason,
            support.claims,
            support.refused,
            prepared.warnings,
            prepared.tool_calls,
        )

    def _no_sources(self, prepared: Prepared) -> Answer:
        """Nothing retrieved, or nothing relevant enough: the refusal, without spending the model on it."""
        return self.finish(prepared, Completion(NO_ANSWER), 0.0, 0.0)

    def _complete(self, prepared: Prepared) -> tuple[Completion, float]:
        started = time.perf_counter()
        if self.tools is not None:
            completion = self.tools.complete(self.chat, prepared)
        else:
            completion = self.chat.complete(prepared.messages, prepared.max_tokens, prepared.adapter)
        return completion, time.perf_counter() - started

    def admit(self, ask: Ask) -> Slot:
        """Before any work: the caller's token budget, then a model-queue slot (OverloadedError: 429)."""
        if ask.caller is not None and self.budgets is not None:
            self.budgets.require(ask.caller)
        return self.queue.reserve(ask.caller.id if ask.caller else "")

    def _charge(self, ask: Ask, answer: Answer) -> Answer:
        if ask.caller is not None and self.budgets is not None:
            self.budgets.charge(ask.caller, answer.usage["completion_tokens"])
        return answer

    def answer(self, ask: Ask) -> Answer:
        """Blocking answer (for the CLI and evaluation)."""
        with self.admit(ask) as slot:
            prepared = self.prepare(ask)
            if not prepared.answerable:
                return self._no_sources(prepared)
            submitted = time.perf_counter()
            future = slot.submit(lambda: self._complete(prepared))
        completion, generation_s = future.result()
        queue_s = time.perf_counter() - submitted - generation_s
        return self._charge(ask, self.finish(prepared, completion, generation_s, queue_s))

    async def answer_async(self, ask: Ask) -> Answer:
        """The answer: admitted first, retrieval in a thread, generation through the queue."""
        with self.admit(ask) as slot:  # a full queue refuses before retrieval runs
            prepared = await run_in_threadpool(self.prepare, ask)
            if not prepared.answerable:
                return self._no_sources(prepared)
            submitted = time.perf_counter()
            future = slot.submit(lambda: self._complete(prepared))
        completion, generation_s = await asyncio.wrap_future(future)  # cancelling drops a queued job
        queue_s = time.perf_counter() - submitted - generation_s
        return self._charge(ask, self.finish(prepared, completion, generation_s, queue_s))

    async def stream(
        self, ask: Ask, cancel: threading.Event | None = None
    ) -> AsyncGenerator[Prepared | str | Answer | None, None]:
        """Prepared first, then text pieces (None after an idle tick), then the Answer.

        Limits, retrieval and a full queue fail before the first item, so a caller can still answer with an
        error status. Leaving the iteration early sets `cancel`, which stops the generation.
        """
        cancel = cancel or threading.Event()
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue[str | End]()
        with self.admit(ask) as slot:  # a full queue refuses before retrieval runs
            prepared = await run_in_threadpool(self.prepare, ask)
            if prepared.answerable:
                submitted = time.perf_counter()
                future = slot.submit(
                    lambda: stream_job(self.chat, self.tools, prepared, cancel, loop, pieces)
                )
        if not prepared.answerable:
            yield prepared
            yield self._no_sources(prepared)
            return
        finished = False
        try:
            yield prepared
            while not isinstance(item := await next_piece(pieces), End):
                yield item
            if item.error is not None:
                raise item.error
            finished = True
            completion = Completion(item.text, item.prompt_tokens, item.completion_tokens)
            completion.finish_reason = "length" if item.completion_tokens >= prepared.max_tokens else "stop"
            queue_s = max(0.0, time.perf_counter() - submitted - item.seconds)
            prepared.timings["first_token"] = queue_s + item.first_token_s
            yield self._charge(ask, self.finish(prepared, completion, item.seconds, queue_s))
        finally:
            if not finished:
                cancel.set()
                future.cancel()
