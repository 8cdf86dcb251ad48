"""The default-adapter pointer: promote, refuse worse, force, rollback, history, concurrent writers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest
from almanac.core.adapter_registry import AdapterRegistry
from almanac.core.errors import InputError, NotFoundError


def adapter(adapters_dir: Path, name: str, score: float | None, base: float = 0.5, questions: str = "q1"):
    """A complete adapter folder whose manifest holds an evaluation (or none when score is None)."""
    evaluation = (
        None if score is None else {"score": score, "base_score": base, "questions_sha256": questions}
    )
    folder = adapters_dir / name
    AdapterManifest(name, "base/model", "2025-01-01T00:00:00Z", evaluation=evaluation).save(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"")


@pytest.fixture
def registry(tmp_path) -> AdapterRegistry:
    adapter(tmp_path, "v1", 0.6)
    adapter(tmp_path, "v2", 0.7)
    adapter(tmp_path, "worse", 0.55)
    adapter(tmp_path, "unrated", None)
    adapter(tmp_path, "below-base", 0.4)
    adapter(tmp_path, "other-set", 0.9, questions="q2")
    return AdapterRegistry(tmp_path)


def test_promote_better_refuse_worse_force_and_rollback(registry):
    assert registry.default() is None
    assert registry.promote("v1") is None
    assert registry.promote("v2") == "v1" and registry.default() == "v2"
    with pytest.raises(InputError, match=r"worse than the current default 'v2'.*--force"):
        registry.promote("worse")
    assert registry.default() == "v2"
    assert registry.promote("worse", force=True) == "v2" and registry.default() == "worse"
    assert registry.rollback() == "v2"
    assert registry.rollback() == "v1"
    assert registry.rollback() is None and registry.default() is None
    with pytest.raises(InputError, match="nothing to roll back"):
        registry.rollback()
    actions = [(e["action"], e["name"]) for e in registry.history()]
    assert actions == [
        ("promote", "v1"),
        ("promote", "v2"),
        ("force-promote", "worse"),
        ("rollback", "v2"),
        ("rollback", "v1"),
        ("rollback", None),
    ]


def test_unevaluated_adapter_needs_force_and_says_so(registry):
    with pytest.raises(InputError, match=r"no stored evaluation.*--force"):
        registry.promote("unrated")
    registry.promote("unrated", force=True)
    assert registry.default() == "unrated"


def test_adapter_worse_than_the_base_model_is_refused(registry):
    with pytest.raises(InputError, match="worse than the base model"):
        registry.promote("below-base")
    assert registry.default() is None


def test_scores_from_other_questions_are_not_compared(registry):
    registry.promote("v1")
    with pytest.raises(InputError, match="different question sets"):
        registry.promote("other-set")


def test_missing_adapter_and_corrupt_registry(registry, tmp_path):
    with pytest.raises(NotFoundError, match=r"no adapter 'ghost'.*available: below-base"):
        registry.promote("ghost")
    with pytest.raises(InputError, match="bad adapter name"):
        registry.promote("../v1")
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        AdapterRegistry(tmp_path).default()


def test_state_is_json_and_other_readers_see_changes(registry, tmp_path):
    reader = AdapterRegistry(tmp_path)
    assert reader.default() is None
    registry.promote("v1")
    assert reader.default() == "v1"  # a server process sees the switch without a restart
    registry.promote("v2")
    assert reader.default() == "v2"
    state = json.loads((tmp_path / "registry.json").read_text())
    assert state["default"] == "v2" and state["previous"] == [None, "v1"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_concurrent_promotions_all_land(registry, tmp_path):
    def work() -> None:
        own = AdapterRegistry(tmp_path)
        for name in ("v1", "v2") * 5:
            own.promote(name, force=True)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = json.loads((tmp_path / "registry.json").read_text())
    assert len(state["history"]) == 60 and len(state["previous"]) == 60
