"""Streaming answers, the bounded model queue (429 + Retry-After) and cancellation on disconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from almanac.core.settings import Settings
from almanac.core.types import ChatMessage, Completion
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services
from tests.server.sse import sse_events


class GatedChatModel:
    """Holds every generation until `gate` is set; streams pieces until done or `cancel` is set."""

    name = "gated"

    def __init__(self, pieces: int = 1000, delay_s: float = 0.01) -> None:
        self.gate, self.started, self.cancelled = threading.Event(), threading.Event(), threading.Event()
        self.pieces, self.delay_s, self.produced, self.completions = pieces, delay_s, 0, 0

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        self.completions += 1
        self.started.set()
        self.gate.wait(10)
        return Completion("Kessik erupted in 1821 [1].", 10, 6)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        self.started.set()
        self.gate.wait(10)
        for i in range(self.pieces):
            if cancel is not None and cancel.wait(self.delay_s):
                self.cancelled.set()
                return
            self.produced += 1
            yield f"w{i} "


def test_stream_sends_sources_then_tokens_then_done(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue("Kessik erupted in 1821 [1] [8].")
    with client.stream("POST", "/v1/query", json={"question": "Kessik eruption", "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())

    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) > 3
    sources = events[0][1]
    assert "Kessik" in sources["sources"][0]["text"] and sources["model"] == "scripted"
    streamed = "".join(data["text"] for name, data in events if name == "token")
    assert streamed == "Kessik erupted in 1821 [1] ."  # pieces with the marker to no source dropped
    done = events[-1][1]
    assert done["answer"] == "Kessik erupted in 1821 [1]."  # cleaned: [8] points at no source
    assert done["cited"] == [1]
    assert done["supported"] is True and done["refused"] is False and done["claims"][0]["sources"] == [1]
    assert 0 < done["timings"]["first_token"] <= done["timings"]["queue"] + done["timings"]["generation"]
    assert done["usage"]["completion_tokens"] > 0 and done["usage"]["prompt_tokens"] > 0


def test_full_queue_answers_429_with_retry_after(settings: Settings) -> None:
    settings.server.queue_size = 1
    chat = GatedChatModel(pieces=3)
    services = build_services(settings, chat)
    with TestClient(create_app(services=services)) as client:
        first: list[httpx.Response] = []
        worker = threading.Thread(
            target=lambda: first.append(client.post("/v1/query", json={"question": "Kessik"}))
        )
        worker.start()
        assert chat.started.wait(5)  # the one slot is taken by a running generation
        refused = client.post("/v1/query", json={"question": "Kessik"})
        refused_stream = client.post("/v1/query", json={"question": "Kessik", "stream": True})
        chat.gate.set()
        worker.join(10)

    for response in (refused, refused_stream):
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["type"] == "overloaded"
    assert first[0].status_code == 200 and first[0].json()["answer"] == "Kessik erupted in 1821 [1]."
    assert services.answering.queue.depth == 0


def test_disconnect_cancels_the_generation(settings: Settings, live_server: Callable[[FastAPI], str]) -> None:
    chat = GatedChatModel(pieces=2000, delay_s=0.01)  # 20 s unless cancelled
    chat.gate.set()
    services: Services = build_services(settings, chat)
    base = live_server(create_app(services=services))
    body = {"question": "Kessik", "stream": True}
    with (
        httpx.Client(base_url=base, timeout=10) as http,
        http.stream("POST", "/v1/query", json=body) as response,
    ):
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(8)]  # the sources event and a few tokens, then hang up
    assert seen[0] == "event: sources"
    assert chat.cancelled.wait(5), "generation kept running after the client left"
    assert chat.produced < 1000
    deadline = time.monotonic() + 5
    while services.answering.queue.depth and time.monotonic() < deadline:
        time.sleep(0.02)
    assert services.answering.queue.depth == 0  # the slot is free again


def test_a_client_that_leaves_drops_its_queued_generation(
    settings: Settings, live_server: Callable[[FastAPI], str]
) -> None:
    chat = GatedChatModel()
    services = build_services(settings, chat)
    base = live_server(create_app(services=services))
    holder = threading.Thread(
        target=lambda: httpx.post(f"{base}/v1/query", json={"question": "a"}, timeout=30)
    )
    holder.start()
    assert chat.started.wait(5)  # the model is busy with the first request
    with pytest.raises(httpx.ReadTimeout):  # the second waits in the queue, then its client hangs up
        httpx.post(f"{base}/v1/query", json={"question": "Kessik"}, timeout=0.5)
    deadline = time.monotonic() + 5
    while services.answering.queue.depth > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert services.answering.queue.depth == 1  # the queued job was dropped, its slot freed
    chat.gate.set()
    holder.join(10)
    assert chat.completions == 1  # it never ran
