"""Prometheus metrics, one registry per app (two apps in one process, as in tests, never collide).

    almanac_requests_total{route,method,status}      counter
    almanac_request_seconds{route,method}             histogram (a stream counts until its last byte)
    almanac_retrieval_seconds                         histogram (search: embed + FAISS + BM25 + fusion)
    almanac_generation_seconds                        histogram (chat model time, queue wait excluded)
    almanac_queue_wait_seconds                        histogram
    almanac_generated_tokens_total                    counter
    almanac_queue_depth                               gauge (model jobs waiting or running)

Routes are labelled by their template (``/v1/documents/{document_id}``), so ids never explode the label set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from almanac.server.answering.answer import Answer

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The app's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, buckets = self.registry, _LATENCY
        self.requests = Counter(
            "almanac_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "almanac_request_seconds", "HTTP latency", ["route", "method"], buckets=buckets, registry=r
        )
        self.retrieval = Histogram("almanac_retrieval_seconds", "Retrieval time", buckets=buckets, registry=r)
        self.generation = Histogram("almanac_generation_seconds", "Generation", buckets=buckets, registry=r)
        self.queue_wait = Histogram(
            "almanac_queue_wait_seconds", "Model queue wait", buckets=buckets, registry=r
        )
        self.tokens = Counter("almanac_generated_tokens", "Tokens generated", registry=r)
        self.queue_depth = Gauge("almanac_queue_depth", "Model jobs waiting or running", registry=r)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth at scrape time."""
        self.queue_depth.set_function(lambda: float(depth()))

    def observe_answer(self, answer: Answer) -> None:
        """Record an answer's retrieval, queue and generation times and its tokens."""
        self.retrieval.observe(answer.timings.get("retrieval", 0.0))
        if answer.timings.get("generation"):
            self.generation.observe(answer.timings["generation"])
            self.queue_wait.observe(answer.timings.get("queue", 0.0))
        self.tokens.inc(answer.usage.get("completion_tokens", 0))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, method and status (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
