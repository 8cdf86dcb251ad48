"""Server fixtures: a small indexed collection in a tmp ALMANAC_HOME, Services built with fakes, clients.

The collection ``default`` holds three Markdown documents and the rows of a SQLite table ``bikes`` (source
``shop``), indexed through the real pipeline with the hashing embedder. `services` wires the app's real
components around that embedder and a ScriptedChatModel; `client` is a TestClient with the lifespan run;
`live_server` serves an app with uvicorn on a free loopback port (for the openai client and disconnects).
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.ports import ChatModel
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from almanac.server.answering.service import AdapterPolicy
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel

DOCS = {
    "volcanoes.md": "# Volcanoes\n\nMount Kessik last erupted in 1821; its crater lake is Tamsin Pool.\n",
    "harbor.md": "# Harbor\n\nThe Orlen harbor lighthouse was built from granite quarried at Vell in 1894.\n",
    "baking.md": "# Baking\n\nThe Brindle sourdough rests for exactly 14 hours at 22 degrees.\n",
}
BIKES = [(1, "Trail 29", 12.5, "green"), (2, "Road Racer", 7.9, "red"), (3, "City Cruiser", 16.0, "blue")]


def make_shop_db(path: Path) -> Path:
    """A SQLite source with a `bikes` table."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, weight_kg REAL, color TEXT)")
        conn.executemany("INSERT INTO bikes VALUES (?, ?, ?, ?)", BIKES)
    return path


def make_settings(home: Path, **server: object) -> Settings:
    """Settings over `home` with the hashing embedder (no model load)."""
    return Settings(home=home, embedding={"model": "hashing", "hashing_dimension": 256}, server=server)


def index_corpus(
    settings: Settings, docs: dict[str, str], db: Path | None, collection: str = "default"
) -> None:
    """Write `docs` under home/docs and index them (and the `bikes` rows of `db`) into `collection`."""
    folder = settings.home / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    with WriterLock(settings.home):
        indexer = Indexer(settings, catalog, embedder)
        indexer.ingest_paths([folder], collection)
        if db is not None:
            url = f"sqlite:///{db}"
            catalog.register_source("shop", url)
            source = SourceDatabase("shop", url)
            indexer.ingest_tables(source, ["bikes"], collection)
            source.close()
    catalog.close()


def build_services(settings: Settings, chat: ChatModel, adapters: AdapterPolicy | None = None) -> Services:
    """Real components around the hashing embedder and a fake chat model."""
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    return Services.assemble(settings, catalog, embedder, chat, adapters=adapters)


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    """The SQLite source file (change it to test live re-reads)."""
    return make_shop_db(tmp_path / "shop.db")


@pytest.fixture
def settings(tmp_path: Path, shop_db: Path) -> Settings:
    """Settings over a tmp ALMANAC_HOME holding the indexed corpus."""
    settings = make_settings(tmp_path / "home")
    index_corpus(settings, DOCS, shop_db)
    return settings


@pytest.fixture
def chat() -> ScriptedChatModel:
    """The scripted chat model; enqueue replies, inspect `.calls`."""
    return ScriptedChatModel(default="The sources do not say.")


@pytest.fixture
def services(settings: Settings, chat: ScriptedChatModel) -> Services:
    """Services with fakes over the indexed corpus."""
    return build_services(settings, chat)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    """A TestClient over create_app(services=...), lifespan run and warm-up finished."""
    with TestClient(create_app(services=services)) as test_client:
        assert services.readiness.wait(10)
        yield test_client


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server() -> Iterator[Callable[[FastAPI], str]]:
    """Start uvicorn on a free loopback port in a thread: ``base = live_server(app)``; stopped at teardown."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)
