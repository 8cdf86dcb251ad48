"""Adapters over REST (admin keys): list with manifest summaries, promote (checked or forced), roll back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest
from almanac.server.services import Services
from tests.server.ops_fixtures import bearer, ops_client, ops_settings

QUESTIONS = "a" * 64


def make_adapter(adapters_dir: Path, name: str, score: float) -> None:
    folder = adapters_dir / name
    evaluation = {"score": score, "base_score": 0.5, "questions_sha256": QUESTIONS, "per_item": [1, 0]}
    AdapterManifest(
        name, "tiny-base", "2025-01-01T00:00:00Z", validation_loss=1.25, evaluation=evaluation
    ).save(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"not read by the registry")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(tmp_path / "home")
    make_adapter(settings.adapters_dir, "support-v1", 0.8)
    make_adapter(settings.adapters_dir, "support-v2", 0.6)
    with ops_client(settings) as pair:
        yield pair


def test_list_promote_rollback(app: tuple[TestClient, Services]) -> None:
    client, services = app
    listed = client.get("/v1/adapters").json()
    assert listed["default"] is None
    assert [a["name"] for a in listed["adapters"]] == ["support-v1", "support-v2"]
    first = listed["adapters"][0]
    assert first["base_model"] == "tiny-base" and first["validation_loss"] == 1.25
    assert first["evaluation"] == {"score": 0.8, "base_score": 0.5, "questions_sha256": QUESTIONS}
    assert not first["default"]

    promoted = client.post("/v1/adapters/support-v1/promote")
    assert promoted.json() == {"default": "support-v1", "previous": None}
    assert services.registry.default() == "support-v1"
    assert [a["default"] for a in client.get("/v1/adapters").json()["adapters"]] == [True, False]

    worse = client.post("/v1/adapters/support-v2/promote")
    assert worse.status_code == 400 and "worse" in worse.json()["error"]["message"]
    forced = client.post("/v1/adapters/support-v2/promote", params={"force": "true"})
    assert forced.json() == {"default": "support-v2", "previous": "support-v1"}

    assert client.post("/v1/adapters/rollback").json() == {"default": "support-v1"}
    assert client.post("/v1/adapters/rollback").json() == {"default": None}
    nothing = client.post("/v1/adapters/rollback")
    assert nothing.status_code == 400 and "nothing to roll back" in nothing.json()["error"]["message"]


def test_unknown_and_unsafe_names(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    missing = client.post("/v1/adapters/nope/promote")
    assert missing.status_code == 404 and "support-v1" in missing.json()["error"]["message"]
    assert client.post("/v1/adapters/..%2F..%2Fetc/promote").status_code in (400, 404)


def test_only_admin_keys_manage_adapters(app: tuple[TestClient, Services]) -> None:
    client, services = app
    write, admin = services.keys.create("write"), services.keys.create("admin")
    assert client.post("/v1/adapters/support-v1/promote", headers=bearer(write)).status_code == 403
    assert client.post("/v1/adapters/rollback", headers=bearer(write)).status_code == 403
    assert services.registry.default() is None
    assert client.post("/v1/adapters/support-v1/promote", headers=bearer(admin)).status_code == 200
