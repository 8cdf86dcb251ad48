"""Rate limits over HTTP: requests per key (per IP without keys), generated tokens per key, failed key checks
per prefix and IP (refused without scrypt), and admission to the model queue before retrieval."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from almanac.core.errors import OverloadedError
from almanac.core.settings import Settings
from almanac.server.app import create_app
from almanac.server.http.rate_limit import Buckets
from almanac.server.keys import key_store
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services
from tests.server.ops_fixtures import bearer

QUESTION = {"question": "When did Mount Kessik last erupt?"}


def _with(settings: Settings, **server: Any) -> Settings:
    return settings.model_copy(update={"server": settings.server.model_copy(update=server)})


@contextmanager
def _serve(
    settings: Settings, chat: ScriptedChatModel, **server: Any
) -> Iterator[tuple[TestClient, Services]]:
    services = build_services(_with(settings, **server), chat)
    try:
        with TestClient(create_app(services=services)) as client:
            assert services.readiness.wait(10)
            yield client, services
    finally:
        services.close()


def _assert_429(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "overloaded"
    assert int(response.headers["retry-after"]) >= 1


def test_a_key_past_its_request_limit_gets_429_while_another_key_passes(
    settings: Settings, chat: ScriptedChatModel
) -> None:
    with _serve(settings, chat, rate_limit_per_minute=10) as (client, services):
        busy, other = services.keys.create("read"), services.keys.create("read")
        body = {"query": "granite lighthouse", "top_k": 2}
        statuses = [client.post("/v1/search", json=body, headers=bearer(busy)).status_code for _ in range(30)]
        assert statuses == [200] * 10 + [429] * 20
        refused = client.post("/v1/search", json=body, headers=bearer(busy))
        _assert_429(refused)
        assert 1 <= int(refused.headers["retry-after"]) <= 6  # one request refills in 60/10 s
        assert client.post("/v1/search", json=body, headers=bearer(other)).status_code == 200


def test_scope_overrides_the_default_limit(settings: Settings, chat: ScriptedChatModel) -> None:
    with _serve(settings, chat, rate_limit_per_minute=2, rate_limits_by_scope={"admin": 0}) as (client, svc):
        read, admin = svc.keys.create("read"), svc.keys.create("admin")
        assert [client.get("/v1/models", headers=bearer(read)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert {client.get("/v1/models", headers=bearer(admin)).status_code for _ in range(5)} == {200}


def test_without_keys_the_limit_is_per_client_ip(settings: Settings, chat: ScriptedChatModel) -> None:
    with _serve(settings, chat, rate_limit_per_minute=3) as (client, _services):
        assert [client.get("/v1/models").status_code for _ in range(4)] == [200, 200, 200, 429]
        elsewhere = TestClient(client.app, client=("10.0.0.7", 5000))  # the app is already started
        assert elsewhere.get("/v1/models").status_code == 200  # another IP has its own budget


def test_a_key_over_its_token_budget_gets_429_before_any_work(
    settings: Settings, chat: ScriptedChatModel
) -> None:
    with _serve(settings, chat, token_limit_per_minute=5) as (client, services):
        key = services.keys.create("read")
        chat.enqueue("Mount Kessik last erupted in 1821 , eight words here [1].")
        first = client.post("/v1/query", json=QUESTION, headers=bearer(key))
        assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] > 5
        searched: list[str] = []
        search = services.answerer.search
        services.answerer.search = lambda q, *a: searched.append(q) or search(q, *a)  # type: ignore[func-returns-value]
        _assert_429(client.post("/v1/query", json=QUESTION, headers=bearer(key)))
        chat_body = {"model": "almanac", "messages": [{"role": "user", "content": QUESTION["question"]}]}
        _assert_429(client.post("/v1/chat/completions", json=chat_body, headers=bearer(key)))
        assert searched == [] and len(chat.calls) == 1  # refused before retrieval and generation
        other = services.keys.create("read")
        assert client.post("/v1/query", json=QUESTION, headers=bearer(other)).status_code == 200


def test_failed_key_checks_past_the_limit_get_429_without_scrypt(
    settings: Settings, chat: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real_check = key_store.check_key
    monkeypatch.setattr(
        key_store, "check_key", lambda key, stored: hashed.append(key) or real_check(key, stored)
    )
    with _serve(settings, chat, auth_failures_per_minute=3) as (client, services):
        key = services.keys.create("read")
        assert client.get("/v1/models", headers=bearer(key)).status_code == 200  # verified once, remembered
        hashed.clear()
        wrong = bearer(key[:13] + "x" * (len(key) - 13))  # the real prefix, a wrong secret
        statuses = [client.get("/v1/models", headers=wrong).status_code for _ in range(10)]
        assert statuses == [401] * 3 + [429] * 7
        _assert_429(client.get("/v1/models", headers=wrong))
        assert len(hashed) == 3  # scrypt ran for the three allowed failures only
        assert client.get("/v1/models", headers=bearer(key)).status_code == 200  # the real key still works
        assert len(hashed) == 3


def test_a_full_queue_refuses_before_retrieval(settings: Settings, chat: ScriptedChatModel) -> None:
    with _serve(settings, chat, queue_size=2) as (client, services):
        searched: list[str] = []
        search = services.answerer.search
        services.answerer.search = lambda q, *a: searched.append(q) or search(q, *a)  # type: ignore[func-returns-value]
        queue = services.answering.queue
        held = [queue.reserve("someone"), queue.reserve("someone")]
        _assert_429(client.post("/v1/query", json=QUESTION))
        _assert_429(client.post("/v1/query", json={**QUESTION, "stream": True}))
        chat_body = {"model": "almanac", "messages": [{"role": "user", "content": QUESTION["question"]}]}
        _assert_429(client.post("/v1/chat/completions", json=chat_body))
        assert searched == [] and chat.calls == []
        for slot in held:
            slot.release()
        assert client.post("/v1/query", json=QUESTION).status_code == 200
        assert client.post("/v1/query", json={"question": "zzqx unrelated wombat"}).status_code == 200
        assert searched and queue.depth == 0  # every answered request freed its slot


def test_buckets_refill_carry_debt_and_stay_bounded() -> None:
    now = [0.0]
    tokens = Buckets(60, "generated tokens", clock=lambda: now[0], max_clients=2)
    tokens.require("a")
    tokens.charge("a", 90)  # an answer longer than the budget: 30 tokens of debt
    with pytest.raises(OverloadedError) as refused:
        tokens.require("a")
    assert refused.value.retry_after == 30  # the debt refills at one token a second
    now[0] = 31.0
    tokens.require("a")
    for client in ("b", "c"):
        tokens.charge(client, 60)
    assert len(tokens._levels) == 2  # "a", the least recently used, was dropped (it had refilled)
    Buckets(0, "requests").take("anyone", 10**6)  # 0: off


def test_every_keyed_route_declares_429(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):  # every /v1 route goes through the key dependency and its limits
                assert "429" in operation["responses"], (method, path)
