"""Closed-loop load on one route: C clients, each sends its next request as soon as the last one answers.

    stats = run_level("http://127.0.0.1:8123", "/v1/search", payloads, concurrency=8, requests=400)
    stats["p99_ms"], stats["throughput_rps"]

A fixed number of requests per level (and a time cap, so a slow machine still ends), drawn in order from the
payloads. Latency is the client's (request sent to response read, HTTP included); throughput is the answered
requests over the level's wall time. The client is asyncio + httpx in this process: one thread, keep-alive
connections, so it takes as little of the shared CPU as a Python client can.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np


def summarize(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds (NaN when nothing was measured)."""
    if not latencies_s:
        return dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms"), float("nan"))
    ms = np.asarray(latencies_s) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


async def _drive(
    client: httpx.AsyncClient,
    path: str,
    payloads: Sequence[dict[str, Any]],
    concurrency: int,
    requests: int,
    max_seconds: float,
) -> tuple[list[float], Counter[int | str], float]:
    tickets = itertools.count()
    latencies: list[float] = []
    errors: Counter[int | str] = Counter()
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client_loop() -> None:
        while (ticket := next(tickets)) < requests and time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                response = await client.post(path, json=payloads[ticket % len(payloads)])
            except httpx.TransportError as exc:  # e.g. a keep-alive connection the server just closed
                errors[type(exc).__name__] += 1
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors[response.status_code] += 1

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


async def _level(
    url: str, path: str, payloads: Sequence[dict[str, Any]], concurrency: int, requests: int, max_s: float
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        warm = [payloads[-1 - i % len(payloads)] for i in range(concurrency * 2)]  # opens the connections
        await _drive(client, path, warm, concurrency, len(warm), max_s)
        load_before = os.getloadavg()[0]
        latencies, errors, wall = await _drive(client, path, payloads, concurrency, requests, max_s)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": dict(errors),
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        **summarize(latencies),
        "load_avg_1m": [load_before, os.getloadavg()[0]],
    }


def run_level(
    url: str,
    path: str,
    payloads: Sequence[dict[str, Any]],
    concurrency: int,
    requests: int,
    max_seconds: float = 180,
) -> dict[str, Any]:
    """One closed-loop level: warm-up (2 requests per client, not counted), then `requests` requests."""
    return asyncio.run(_level(url, path, payloads, concurrency, requests, max_seconds))
