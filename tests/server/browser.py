"""Support for the browser tests of the web page: Chromium found on the machine and driven by Playwright,
the samples corpus indexed into a tmp home, an app served by uvicorn on loopback, and the README screenshot.

No browser is ever downloaded: Playwright drives the system's Chromium (Debian: `apt-get install -y
--no-install-recommends chromium`; `.ci/run` installs it in CI). Without it the tests skip with that reason.
Set ALMANAC_TEST_CHROMIUM to use another binary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI

from almanac.core.catalog import Catalog
from almanac.core.ports import Embedder
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from tests.live_uvicorn import serving
from tests.server.app_fixtures import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SCREENSHOT_ENV = "ALMANAC_PAGE_SCREENSHOT"  # where to save the page's screenshot (README: docs/page.png)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    """The Chromium binary to drive: ALMANAC_TEST_CHROMIUM, else `chromium` or `chromium-browser` on PATH."""
    given = os.environ.get("ALMANAC_TEST_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium driven by Playwright; skips the test (module) when either is missing."""
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium found for the browser tests: install it with `apt-get install -y "
            "--no-install-recommends chromium` (or set ALMANAC_TEST_CHROMIUM=/path/to/chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with the console errors it logged (CSP violations show there)."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def log(self, message: ConsoleMessage) -> None:
        """Keep console errors; an API error answer (401, 413) is a failed resource load, as expected."""
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)


@contextmanager
def open_tab(browser: Browser, base: str, viewport: dict[str, int] = DESKTOP) -> Iterator[Tab]:
    """The page at `base` in a new browser context (its own session storage), closed afterwards."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    tab = Tab(context.new_page())
    tab.page.on("console", tab.log)
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.page.goto(base)
    try:
        yield tab
    finally:
        context.close()


def ask(page: Page, question: str, timeout_s: float = 10) -> None:
    """Type a question and send it with Enter, as a keyboard user does; wait for the finished answer."""
    from playwright.sync_api import expect

    expect(page.locator("#collection")).to_have_value("default")
    page.locator("#question").focus()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    answer = page.locator(".turn").last.locator(".answer")
    expect(answer).to_have_attribute("aria-busy", "false", timeout=timeout_s * 1000)


def sources_event(stream: str) -> list[dict[str, Any]]:
    """The sources of a streamed answer (the body of POST /v1/query with stream: true) as the server sent
    them."""
    head, _, rest = stream.partition("event: sources\ndata: ")
    assert head == "", stream[:200]
    sources: list[dict[str, Any]] = json.loads(rest.partition("\n")[0])["sources"]
    return sources


def sample_db(path: Path) -> Path:
    """The samples' SQLite database (bikes and stores), written by samples/sample_db.py."""
    spec = importlib.util.spec_from_file_location("sample_db", SAMPLES / "sample_db.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    created: Path = module.create_sample_db(path)
    return created


def index_samples(settings: Settings, embedder: Embedder) -> Path:
    """Index samples/documents and the samples database's tables into `default`; returns the database."""
    db = sample_db(settings.home / "samples.db")
    catalog = Catalog(settings.catalog_url)
    with WriterLock(settings.home):
        indexer = Indexer(settings, catalog, embedder)
        assert indexer.ingest_paths([SAMPLES / "documents"], "default").ok
        url = f"sqlite:///{db}"
        catalog.register_source("samples", url)
        source = SourceDatabase("samples", url)
        assert indexer.ingest_tables(source, ["bikes", "stores"], "default").ok
        source.close()
    catalog.close()
    return db


def serve(app: FastAPI) -> AbstractContextManager[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields the base URL."""
    return serving(app)


@contextmanager
def serve_process(home: Path, env: dict[str, str], ready_s: float = 300) -> Iterator[str]:
    """`almanac serve` over `home` as users run it (a subprocess); yields the base URL once /readyz is 200."""
    port = free_port()
    command = [sys.executable, "-m", "almanac.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = home / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"almanac serve did not get ready: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(60)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def screenshot(page: Page, fallback: Path) -> Path:
    """Save a full-page screenshot to $ALMANAC_PAGE_SCREENSHOT (how docs/page.png is made) or `fallback`."""
    path = Path(os.environ.get(SCREENSHOT_ENV) or fallback)
    page.screenshot(path=str(path), full_page=True)
    return path


def unlabelled_controls(page: Page) -> list[str]:
    """Ids (or tags) of the page's inputs, selects and textareas that no <label> names."""
    names: list[str] = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
            .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
            .map((c) => c.id || c.tagName)"""
    )
    return names
