"""Server fixtures: a small indexed collection in a tmp ALMANAC_HOME, Services built with fakes, clients.

The collection ``default`` holds three Markdown documents and the rows of a SQLite table ``bikes`` (source
``shop``), indexed through the real pipeline with the hashing embedder. `services` wires the app's real
components around that embedder and a ScriptedChatModel; `client` is a TestClient with the lifespan run;
`live_server` serves an app with uvicorn on a free loopback port (for the openai client and disconnects).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from almanac.core.errors import ConfigError
from almanac.core.model_cache import prepare_model_dir
from almanac.core.settings import ChatSettings, Settings
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel
from tests.live_uvicorn import serving
from tests.server.app_fixtures import build_services, make_settings
from tests.server.corpus import DOCS, index_corpus, make_shop_db


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


@pytest.fixture
def live_server() -> Iterator[Callable[[FastAPI], str]]:
    """Start uvicorn on a free loopback port in a thread: ``base = live_server(app)``; stopped at teardown."""
    with ExitStack() as running:
        yield lambda app: running.enter_context(serving(app))


@pytest.fixture(scope="session")
def reader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default embedded reader, converted once per test run to safetensors and shared by the end-to-end
    modules (ALMANAC_TEST_MODELS_DIR: a folder to reuse between runs); skipped when its parts are missing."""
    given = os.environ.get("ALMANAC_TEST_MODELS_DIR")
    try:
        return prepare_model_dir(
            ChatSettings().model, Path(given) if given else tmp_path_factory.mktemp("models")
        )
    except ConfigError as exc:
        pytest.skip(str(exc))
