"""Limits, the one error shape, health and readiness, metrics, and concurrent searches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from almanac.core.settings import Settings
from almanac.core.types import ChatMessage, Completion
from almanac.server.app import create_app
from almanac.server.chat.lazy_chat_model import LazyChatModel
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services


def _error(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    assert "Traceback" not in response.text
    return body["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "status", "kind", "says"),
    [
        ({"question": "x" * 4001}, 400, "limit_exceeded", "MAX_QUESTION_CHARS"),
        ({"question": "   "}, 400, "limit_exceeded", "empty"),
        ({"question": "Kessik", "top_k": 51}, 400, "limit_exceeded", "MAX_TOP_K"),
        ({"question": "Kessik", "max_tokens": 1025}, 400, "limit_exceeded", "MAX_TOKENS"),
        ({"question": "Kessik", "top_k": 0}, 422, "validation_error", "top_k"),
        ({"question": "Kessik", "bogus": 1}, 422, "validation_error", "bogus"),
        ({"question": "Kessik", "collection": "../etc"}, 422, "validation_error", "collection"),
        ({}, 422, "validation_error", "question"),
    ],
)
def test_limits_answer_400_or_422_in_the_error_shape(
    client: TestClient, payload: dict, status: int, kind: str, says: str
) -> None:
    assert says in _error(client.post("/v1/query", json=payload), status, kind)


def test_body_over_the_limit_is_413_declared_or_streamed(settings: Settings) -> None:
    settings.server.max_body_bytes = 2000
    with TestClient(create_app(services=build_services(settings, ScriptedChatModel()))) as client:
        declared = client.post("/v1/query", json={"question": "x" * 3000})

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
            yield b'{"question": "'
            for _ in range(30):
                yield b"y" * 100
            yield b'"}'

        streamed = client.post("/v1/search", content=chunked(), headers={"content-type": "application/json"})
        small = client.post("/v1/search", json={"query": "Kessik"})
    assert "max_body_bytes" in _error(declared, 413, "payload_too_large")
    _error(streamed, 413, "payload_too_large")
    assert small.status_code == 200


def test_malformed_json_and_unknown_route(client: TestClient) -> None:
    bad = client.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    _error(bad, 422, "validation_error")
    _error(client.get("/v1/nothing"), 404, "not_found")
    _error(client.get("/v1/query"), 405, "method_not_allowed")


def test_a_failing_model_is_a_500_without_traceback(settings: Settings) -> None:
    class Broken(ScriptedChatModel):
        def complete(
            self, messages: list[ChatMessage], max_tokens: int, adapter: str | None = None
        ) -> Completion:
            raise RuntimeError("secret internal detail")

    app = create_app(services=build_services(settings, Broken()))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/query", json={"question": "Kessik"})
    assert "server log" in _error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text


def test_readyz_is_503_until_the_warm_up_has_loaded_the_model(settings: Settings) -> None:
    release = threading.Event()

    def slow_loader() -> ScriptedChatModel:
        release.wait(10)
        return ScriptedChatModel()

    services = build_services(settings, LazyChatModel(slow_loader, "slow"))
    with TestClient(create_app(services=services)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        loading = client.get("/readyz")
        release.set()
        assert services.readiness.wait(10)
        ready = client.get("/readyz")
    assert loading.status_code == 503 and loading.json()["status"] == "loading"
    assert ready.status_code == 200 and "'default' at version" in ready.json()["detail"]


def test_metrics_count_routes_and_time_retrieval_and_generation(client: TestClient) -> None:
    client.post("/v1/query", json={"question": "Kessik"})
    client.post("/v1/search", json={"query": "harbor"})
    client.post("/v1/search", json={"query": ""})
    text = client.get("/metrics").text

    assert 'almanac_requests_total{method="POST",route="/v1/query",status="200"} 1.0' in text
    assert 'almanac_requests_total{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert 'almanac_requests_total{method="POST",route="/v1/search",status="422"} 1.0' in text
    assert 'almanac_request_seconds_bucket{le="0.5",method="POST",route="/v1/query"}' in text
    assert "almanac_retrieval_seconds_count 2.0" in text
    assert "almanac_generation_seconds_count 1.0" in text
    assert "almanac_queue_depth 0.0" in text


def test_concurrent_searches_match_serial_ones(client: TestClient) -> None:
    queries = [f"{word} {n}" for n in range(4) for word in ("Kessik", "harbor granite", "sourdough", "bike")]
    top_ks = [1 + i % 4 for i in range(len(queries))]  # different top_k share batches too

    def search(pair: tuple[str, int]) -> dict:
        return client.post("/v1/search", json={"query": pair[0], "top_k": pair[1]}).json()

    serial = [search(pair) for pair in zip(queries, top_ks, strict=True)]
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(search, zip(queries, top_ks, strict=True)))
    assert concurrent == serial
    assert [len(r["results"]) for r in serial] == top_ks
