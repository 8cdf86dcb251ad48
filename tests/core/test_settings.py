"""The settings tree: every field is described, and nested fields are read from ALMANAC_SECTION__FIELD."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from almanac.core.settings import ChatSettings, Settings


def _fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str | None]]:
    """(dotted name, description) of every field of `model` and of the sections below it."""
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info.description
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _fields(info.annotation, f"{prefix}{name}.")


def test_the_walk_reaches_nested_sections() -> None:
    names = {name for name, _ in _fields(Settings)}
    assert {"home", "chat", "chat.max_new_tokens", "server.port", "index.kind"} <= names


def test_every_field_has_a_description() -> None:
    missing = [name for name, description in _fields(Settings) if not (description or "").strip()]
    assert not missing, f"settings without a description: {missing}"


def test_nested_field_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_CHAT__MAX_NEW_TOKENS", "77")
    monkeypatch.setenv("ALMANAC_INDEX__KIND", "hnsw")
    settings = Settings()
    assert settings.chat.max_new_tokens == 77
    assert settings.index.kind == "hnsw"
    assert (
        settings.chat.context_tokens == ChatSettings().context_tokens
    )  # the section's other fields keep defaults


def test_nested_field_constraints_hold_for_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_CHAT__MAX_NEW_TOKENS", "0")
    with pytest.raises(ValueError, match="max_new_tokens"):
        Settings()
