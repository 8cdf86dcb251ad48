"""Helpers for the operations tests (keys, jobs, documents, lookups, adapters): an app over a tmp home.

`ops_app(settings)` wires the real services around the hashing embedder and a scripted chat model, then
`create_app(services=...)`; use it as a context manager so the lifespan starts and stops the job runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel

CORPUS = {
    "otters.md": "# Otters\n\nThe river otter colony at Kelmsby weir numbers exactly 37 animals.\n",
    "clocks.md": "# Clocks\n\nThe Varrow town clock was wound by hand until the winter of 1952.\n",
}


def ops_settings(home: Path, **server: object) -> Settings:
    """Settings over `home`: hashing embedder (no model load), small chunks, the given server settings."""
    return Settings(
        home=home,
        embedding={"model": "hashing", "hashing_dimension": 64},
        chunking={"size_tokens": 64, "overlap_tokens": 8},
        server=server,
    )


def ops_services(settings: Settings) -> Services:
    """The app's real services around fakes; fast job polling for tests."""
    settings.home.mkdir(parents=True, exist_ok=True)
    services = Services.assemble(
        settings,
        Catalog(settings.catalog_url),
        HashingEmbedder(settings.embedding.hashing_dimension),
        ScriptedChatModel(),
    )
    services.jobs.poll_s = 0.2
    services.jobs.lock_poll_s = 0.2
    return services


@contextmanager
def ops_client(settings: Settings) -> Iterator[tuple[TestClient, Services]]:
    """A TestClient with the lifespan run (job runner started), and its services."""
    services = ops_services(settings)
    try:
        with TestClient(create_app(services=services)) as client:
            yield client, services
    finally:
        services.close()


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write files into `folder` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}
