"""The web page at / in a real browser (Chromium driven by Playwright) against a real server on 127.0.0.1.

The server holds the samples corpus, indexed with the hashing embedder, and answers with the scripted chat
model (generation is not the point here); test_web_page_e2e.py runs `almanac serve` with the embedded models.
Console errors fail a test: a Content-Security-Policy violation or a script error shows up there.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services, make_settings
from tests.server.browser import (
    PHONE,
    Tab,
    ask,
    chromium,
    index_samples,
    open_tab,
    screenshot,
    serve,
    sources_event,
    unlabelled_controls,
)

pytestmark = pytest.mark.browser
MAX_UPLOAD = 20_000
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass
class Site:
    """The server under test and what the tests look at."""

    base: str
    db: Path
    services: Services
    chat: ScriptedChatModel


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _site(home: Path) -> tuple[Settings, Path]:
    settings = make_settings(home, max_upload_bytes=MAX_UPLOAD, lookup_tables=["samples.bikes:name,stock"])
    return settings, index_samples(settings, HashingEmbedder(settings.embedding.hashing_dimension))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings, db = _site(tmp_path_factory.mktemp("web-home"))
    chat = ScriptedChatModel(default="The sources do not say.")
    services = build_services(settings, chat)
    with serve(create_app(services=services)) as base:
        assert services.readiness.wait(10)
        yield Site(base, db, services, chat)


@pytest.fixture
def tab(browser: Browser, site: Site) -> Iterator[Tab]:
    site.chat.queue.clear()
    with open_tab(browser, site.base) as opened:
        yield opened


def test_the_page_and_its_files_are_served_under_a_strict_csp(site: Site) -> None:
    page = httpx.get(f"{site.base}/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == STRICT_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", page.text)  # nothing inline
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no CDN, no external font
    script = httpx.get(f"{site.base}/static/page.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["content-security-policy"] == STRICT_CSP
    for missing in ("/static/nope.js", "/static/page.py", "/static/..%2Fpage.py", "/static/.hidden.js"):
        assert httpx.get(f"{site.base}{missing}").status_code == 404, missing


def test_collections_are_listed_with_their_counts_and_the_default(site: Site) -> None:
    listed = httpx.get(f"{site.base}/v1/collections").json()
    chunks = site.services.catalog.stats("default").chunks
    assert chunks > 21
    assert listed == {
        "default": "default",
        "collections": [{"name": "default", "documents": 21, "chunks": chunks}],
    }


def test_an_answer_streams_token_by_token_then_links_its_cited_sources(tab: Tab, site: Site) -> None:
    site.chat.enqueue("Carbon-fibre frames are covered for 6 years [2].")
    page = tab.page
    page.evaluate(  # count the answer's growth while it streams
        """() => { window.appends = 0; new MutationObserver((records) => { for (const r of records)
             if (r.target.classList?.contains("answer") && r.target.getAttribute("aria-busy") === "true")
               window.appends += r.addedNodes.length; })
           .observe(document.getElementById("conversation"), { childList: true, subtree: true }); }"""
    )
    with page.expect_response("**/v1/query") as streamed:
        ask(page, "What is the warranty on carbon frames?")
    sent = sources_event(streamed.value.text())

    answer = page.locator(".answer")
    expect(answer).to_have_text("Carbon-fibre frames are covered for 6 years [2].")
    assert page.evaluate("window.appends") >= 5  # one piece per word, not the answer at once
    expect(page.locator(".source")).to_have_count(len(sent))
    cited = page.locator(".source.cited")
    expect(cited).to_have_count(1)
    expect(cited.locator(".num")).to_have_text("[2]")
    expect(cited.locator(".badge")).to_have_text("cited")
    expect(cited.locator(".name")).to_have_text(Path(sent[1]["source"]).name)
    expect(cited.locator(".locator")).to_have_text(sent[1]["locator"])
    passage = cited.locator(".passage")
    expect(passage).to_be_hidden()
    answer.locator("a.cite").press("Enter")  # the [2] link opens and focuses its source
    expect(passage).to_be_visible()
    expect(passage).to_have_text(sent[1]["text"])
    expect(cited.locator("summary")).to_be_focused()
    page.keyboard.press("Enter")  # the summary closes it again from the keyboard
    expect(passage).to_be_hidden()
    assert tab.errors == []


def test_a_follow_up_sends_the_conversation_and_a_new_one_starts_empty(tab: Tab, site: Site) -> None:
    site.chat.enqueue("The Storm SL won it [1].", "It weighs 7.2 kg [1].", "Bergen [1].")
    page = tab.page
    ask(page, "Which bike won the Nordic Cycle Design Prize?")
    ask(page, "How much does it weigh?")

    expect(page.locator(".turn")).to_have_count(2)
    messages = [(m.role, m.content) for m in site.chat.calls[-1][0]]
    assert ("user", "Which bike won the Nordic Cycle Design Prize?") in messages
    assert ("assistant", "The Storm SL won it [1].") in messages
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    ask(page, "Where is Northwind Cycles based?")
    assert [m.role for m in site.chat.calls[-1][0]] == ["system", "user"]  # no earlier turn sent
    assert tab.errors == []


def test_a_row_source_shows_the_rows_live_values(tab: Tab, site: Site) -> None:
    with sqlite3.connect(site.db) as conn:  # changed after indexing: the page shows the row as it is now
        conn.execute("UPDATE bikes SET stock = 77 WHERE name = 'Storm SL'")
    site.chat.enqueue("It costs what the row says [1].")
    page = tab.page
    ask(page, "How much does the Storm SL bike cost, and how many are in stock?")

    row = page.locator(".source.row").filter(has_text="Storm SL").first
    row.locator("summary").click()
    values = row.locator(".row-values")
    expect(values).to_be_visible()
    expect(values.locator("dt", has_text="stock")).to_have_count(1)
    expect(values.locator("dt:text-is('stock') + dd")).to_have_text("77")
    expect(row.locator(".live")).to_contain_text("Live values")
    assert tab.errors == []


def test_rows_a_lookup_returned_join_the_listed_sources(tab: Tab, site: Site) -> None:
    site.chat.enqueue_tool_call("lookup", table="samples.bikes", where={"name": "Storm SL"})
    site.chat.enqueue("The Storm SL is in stock.")
    page = tab.page
    with page.expect_response("**/v1/query") as streamed:
        ask(page, "Is the Storm SL in stock?")
    body = streamed.value.text()
    shown = len(sources_event(body))
    done = json.loads(body.rpartition("event: done\ndata: ")[2].partition("\n")[0])
    assert [(c["name"], c["ok"], len(c["rows"])) for c in done["tool_calls"]] == [("lookup", True, 1)], body
    site_answer = page.locator(".answer")
    expect(site_answer).to_have_attribute("aria-busy", "false")
    expect(page.locator(".source")).to_have_count(shown + 1)  # the looked-up row, after the retrieved ones
    row = page.locator(".source").last
    expect(row.locator(".name")).to_contain_text("bikes")
    expect(site_answer).to_contain_text("The Storm SL is in stock")
    expect(site_answer).not_to_contain_text("tool_call")
    assert tab.errors == []


def test_files_uploaded_by_picker_or_drop_are_listed_and_deleted(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    note = tmp_path / "tandem-care.md"
    note.write_text("# Tandem care\n\nOil the tandem chain every 300 km.\n", encoding="utf-8")
    page.locator("#file-input").set_input_files(note)
    expect(page.locator("#job-line")).to_contain_text("Done")
    expect(page.locator("#job-line")).to_contain_text("1 of 1 items")
    expect(page.locator(".document", has_text="Tandem care")).to_have_count(1)

    dropped = page.evaluate_handle(
        """() => { const data = new DataTransfer();
             data.items.add(new File(["# Saddle fitting\\n\\nSet the saddle at hip height."], "saddle.md"));
             return data; }"""
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    expect(page.locator(".document", has_text="Saddle fitting")).to_have_count(1)
    expect(page.locator("#job-line")).to_contain_text("Done")

    page.get_by_role("button", name="Delete Tandem care").click()
    expect(page.locator(".document", has_text="Tandem care")).to_have_count(0)
    expect(page.locator(".document", has_text="Saddle fitting")).to_have_count(1)
    assert tab.errors == []


def test_an_upload_over_the_limit_is_one_clear_line(tab: Tab, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("spokes " * (MAX_UPLOAD // 6), encoding="utf-8")
    tab.page.locator("#file-input").set_input_files(big)
    notice = tab.page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Too large (413)")
    assert "\n" not in notice.inner_text()
    assert tab.errors == []


def test_a_rate_limited_question_says_when_to_retry(browser: Browser, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", rate_limit_per_minute=3)  # the page's own 3 loads, then 429
    index_samples(settings, HashingEmbedder(settings.embedding.hashing_dimension))
    app = create_app(services=build_services(settings, ScriptedChatModel()))
    with serve(app) as base, open_tab(browser, base) as tab:
        expect(tab.page.locator("#documents .document")).not_to_have_count(0)
        tab.page.locator("#question").fill("Where is Northwind Cycles based?")
        tab.page.get_by_role("button", name="Ask", exact=True).click()
        expect(tab.page.locator("#notice")).to_contain_text(re.compile(r"\(429\).* Retry after \d+ s\."))
    assert tab.errors == []


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    """A server with API keys (answers "Bergen [1]."): its base URL and services."""
    settings, _ = _site(tmp_path / "home")
    services = build_services(settings, ScriptedChatModel(default="Bergen [1]."))
    services.keys.create("admin")
    with serve(create_app(services=services)) as base:
        yield base, services


def test_collections_a_bound_key_lists_are_its_own(keyed: tuple[str, Services]) -> None:
    base, services = keyed
    bound = services.keys.create("read", "elsewhere")
    listed = httpx.get(f"{base}/v1/collections", headers={"Authorization": f"Bearer {bound}"}).json()
    assert listed == {"default": "elsewhere", "collections": []}
    assert httpx.get(f"{base}/v1/collections").status_code == 401
    assert httpx.get(f"{base}/").status_code == 200  # the page itself needs no key: it holds no data


def test_a_server_with_keys_asks_for_one_and_keeps_it_in_the_session(
    browser: Browser, keyed: tuple[str, Services]
) -> None:
    base, services = keyed
    key = services.keys.create("read")
    with open_tab(browser, base) as tab:
        page, notice = tab.page, tab.page.locator("#notice")
        expect(notice).to_contain_text("An API key is needed (401)")
        expect(page.locator("#key-input")).to_be_focused()
        page.keyboard.type("alm_00000000_wrong")
        page.keyboard.press("Enter")
        expect(notice).to_contain_text("unknown or revoked API key")

        page.locator("#key-input").fill(key)
        page.locator("#key-input").press("Enter")
        expect(notice).to_be_hidden()
        expect(page.locator("#key-panel")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('almanac.apiKey')") == key
        assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
        page.reload()  # the key lasts the browser session
        ask(page, "Where is Northwind Cycles based?")
        expect(page.locator(".answer")).to_have_text("Bergen [1].")
        page.get_by_role("button", name=re.compile("^Delete")).first.click()  # a read key may not delete
        expect(notice).to_contain_text("This key may not do that (403)")
    assert tab.errors == []


def test_the_page_fits_a_phone_and_labels_every_control(browser: Browser, site: Site, tmp_path: Path) -> None:
    site.chat.queue.clear()
    site.chat.enqueue("Carbon-fibre frames are covered for 6 years [1].")
    with open_tab(browser, site.base, PHONE) as tab:
        page = tab.page
        ask(page, "What is the warranty on carbon frames?")
        assert unlabelled_controls(page) == []
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], width  # nothing wider than the screen: no sideways scrolling
        assert screenshot(page, tmp_path / "phone.png").stat().st_size > 0
    assert tab.errors == []
