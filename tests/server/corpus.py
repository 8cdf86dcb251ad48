"""The server test corpus: three Markdown documents and a SQLite `bikes` table, and indexing them.

The `settings` fixture indexes both into the collection ``default`` through the real pipeline with the hashing
embedder; tests that need a corpus of their own call `index_corpus` with their documents.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock

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
