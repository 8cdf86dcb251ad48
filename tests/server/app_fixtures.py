"""Helpers that stand up the app under test: its settings, its services around fakes, a port to serve on.

The fixtures in conftest.py (`settings`, `services`, `client`, `live_server`) are built from these; tests that
need a variation (other server settings, another chat model, a second server) call them directly.
"""

from __future__ import annotations

from pathlib import Path

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.ports import ChatModel
from almanac.core.settings import Settings
from almanac.server.answering.adapter_policy import AdapterPolicy
from almanac.server.services import Services
from tests.live_uvicorn import free_port

__all__ = ["build_services", "free_port", "make_settings"]


def make_settings(home: Path, **server: object) -> Settings:
    """Settings over `home` with the hashing embedder (no model load)."""
    return Settings(home=home, embedding={"model": "hashing", "hashing_dimension": 256}, server=server)


def build_services(settings: Settings, chat: ChatModel, adapters: AdapterPolicy | None = None) -> Services:
    """Real components around the hashing embedder and a fake chat model."""
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    return Services.assemble(settings, catalog, embedder, chat, adapters=adapters)
