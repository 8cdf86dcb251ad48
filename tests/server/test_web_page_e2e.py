"""The web page with the embedded models: `almanac serve` (a subprocess, as users run it) with MiniLM and the
default reader over the samples, asked in Chromium. The README's screenshot (docs/page.png) comes from this
test: `ALMANAC_PAGE_SCREENSHOT=docs/page.png pytest tests/server/test_web_page_e2e.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from almanac.core.embedder import SentenceTransformerEmbedder
from almanac.core.settings import Settings
from tests.server.browser import ask, chromium, index_samples, open_tab, screenshot, serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_embedded_models_answer_on_the_page(browser: Browser, reader_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    index_samples(Settings(home=home), SentenceTransformerEmbedder())
    env = {  # as tests/server/test_e2e_answers.py serves them
        "ALMANAC_HOME": str(home),
        "ALMANAC_CHAT__MODEL": str(reader_dir),
        "ALMANAC_CHAT__MAX_NEW_TOKENS": "40",
        "HF_HUB_OFFLINE": "1",
    }
    with serve_process(home, env) as base, open_tab(browser, base) as tab:
        page = tab.page
        ask(page, "What is the warranty on carbon frames?", timeout_s=180)
        expect(page.locator(".answer")).to_contain_text("6 years")
        cited = page.locator(".source.cited")
        expect(cited.first.locator(".name")).to_have_text("warranty-policy.md")
        cited.first.locator("summary").click()
        expect(cited.first.locator(".passage")).to_contain_text("Carbon")
        assert screenshot(page, tmp_path / "page.png").stat().st_size > 0  # docs/page.png comes from here
    assert tab.errors == []
