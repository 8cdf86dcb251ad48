"""End to end with the real embedded models: `almanac serve` (a subprocess, as users run it) with MiniLM and
the default embedded reader over a small corpus and a SQLite table.

The reader answers with greedy decoding (deterministic); the prompt asks for no citation markers, so the
server's claim check must attribute the answer to the right source and add the marker. The models dir is a
session tmp folder (the reader is converted once per run); set ALMANAC_TEST_MODELS_DIR to reuse a folder.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import SentenceTransformerEmbedder
from almanac.core.settings import ChatSettings, Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from tests.server.app_fixtures import free_port

pytestmark = pytest.mark.e2e
READER = ChatSettings().model  # the default embedded reader

DOCS = {
    "kessik.md": "# Mount Kessik\n\nMount Kessik is a volcano on the island of Varrow. "
    "It last erupted in 1821. The crater lake of Mount Kessik is called Tamsin Pool.\n",
    "lighthouse.md": "# Orlen Lighthouse\n\nThe Orlen lighthouse was built in 1894 from granite "
    "quarried at Vell. Its lamp can be seen from 22 nautical miles away.\n",
    "bread.md": "# Brindle sourdough\n\nThe Brindle sourdough rests for 14 hours at 22 degrees "
    "Celsius before it is baked at 240 degrees.\n",
}
BIKES = [
    (1, "Trail 29", "green", 12.5, 1899),
    (2, "Road Racer", "red", 7.9, 2499),
    (3, "City Cruiser", "blue", 16.0, 749),
]
SCHEMA = "CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, color TEXT, weight_kg REAL, price_eur INT)"


def _ingest(home: Path, db: Path) -> None:
    settings = Settings(home=home)
    folder = home / "docs"
    folder.mkdir(parents=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    catalog = Catalog(settings.catalog_url)
    indexer = Indexer(settings, catalog, SentenceTransformerEmbedder())
    assert indexer.ingest_paths([folder], "default").ok
    catalog.register_source("shop", f"sqlite:///{db}")
    source = SourceDatabase("shop", f"sqlite:///{db}")
    assert indexer.ingest_tables(source, ["bikes"], "default").ok
    source.close()
    catalog.close()


class Served:
    """A running `almanac serve` process."""

    def __init__(self, process: subprocess.Popen, base: str, db: Path, log: Path) -> None:
        self.process, self.base, self.db, self.log = process, base, db, log

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"almanac serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"almanac serve not ready in {timeout_s} s: {self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, reader_dir: Path) -> Iterator[Served]:
    """`almanac serve` over an ingested home, with the real models; stopped at the end."""
    home = tmp_path_factory.mktemp("e2e-home")
    db = home / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(SCHEMA)
        conn.executemany("INSERT INTO bikes VALUES (?, ?, ?, ?, ?)", BIKES)
    _ingest(home, db)
    port = free_port()
    env = {
        **os.environ,
        "ALMANAC_HOME": str(home),
        "ALMANAC_CHAT__MODEL": str(reader_dir),
        "ALMANAC_CHAT__MAX_NEW_TOKENS": "40",
        "HF_HUB_OFFLINE": "1",
    }
    log = home / "serve.log"
    command = [sys.executable, "-m", "almanac.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Served(process, f"http://127.0.0.1:{port}", db, log)
    try:
        server.wait_ready(180)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def test_answer_states_the_fact_from_the_right_document(served: Served) -> None:
    question = {"question": "What is the crater lake of Mount Kessik called?", "top_k": 2}
    body = httpx.post(f"{served.base}/v1/query", json=question, timeout=120).json()

    assert "Tamsin Pool" in body["answer"]
    kessik = [n for n, s in enumerate(body["sources"], start=1) if Path(s["source"]).name == "kessik.md"]
    assert body["cited"] == kessik and body["supported"] is True and body["refused"] is False
    assert body["model"] == READER and body["timings"]["generation"] > 0


def test_row_changed_after_ingest_is_answered_with_its_new_value(served: Served) -> None:
    with sqlite3.connect(served.db) as conn:
        conn.execute("UPDATE bikes SET color = 'orange' WHERE id = 1")
    question = {"question": "What is the color of the bike named Trail 29?", "top_k": 1}
    body = httpx.post(f"{served.base}/v1/query", json=question, timeout=120).json()

    assert body["sources"][0]["source"] == "db://shop/bikes/id=1"
    assert "color: orange" in body["sources"][0]["text"]
    assert "orange" in body["answer"].lower() and "green" not in body["answer"].lower()


def test_sigterm_lets_the_running_stream_finish_then_exits(served: Served) -> None:
    question = {
        "question": "Where was the granite for the Orlen lighthouse quarried?",
        "top_k": 1,
        "stream": True,
    }
    events = []
    with httpx.stream("POST", f"{served.base}/v1/query", json=question, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
                if events.count("token") == 1:
                    served.process.send_signal(signal.SIGTERM)  # mid-generation
            elif line.startswith("data: ") and events[-1] == "done":
                done = json.loads(line[6:])
    assert events[0] == "sources" and events[-1] == "done" and events.count("token") > 1
    assert "Vell" in done["answer"]
    assert served.process.wait(60) == 0  # drained, then a clean exit
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.base}/healthz", timeout=2)
