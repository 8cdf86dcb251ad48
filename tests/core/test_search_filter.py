"""Search filters: validation, and `matching_chunk_ids` against a brute-force Python filter over the catalog.

The oracle reads every chunk of the collection with its document's kind, source, ingest time and fields, and
applies the filter in Python (case-sensitive, no LIKE). The corpus holds the traps a careless SQL filter falls
into: a folder differing only in case, LIKE wildcards (`_`) in names, a table differing only in case, a source
named like a table, field values differing only in case, and a second collection.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import ChunkRow, DocumentRow, utcnow
from almanac.core.embedder import HashingEmbedder
from almanac.core.errors import InputError
from almanac.core.search_filter import ROW_FIELDS_MAX, SearchFilter, matching_chunk_ids, row_fields
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer

DOCS = {  # folder -> file -> text; several chunks per document (small chunks)
    "docs": {"a.md": "# Alpha\n\n" + "granite harbor lighthouse " * 30, "b.md": "# Beta\n\nquiet orchard\n"},
    "Docs": {"c.md": "# Gamma\n\nupper case folder\n"},
    "docsAx": {"d.md": "# Delta\n\nnot under docs_\n"},
    "docs_x": {"e.md": "# Epsilon\n\nunder docs_ indeed\n"},
}
BIKES = [(1, "Trail 29", 12.5, "red", b"\x00\x01", None), (2, "Racer", 7.9, "Red", None, "fast")]
BIKES += [(3, "City", 16.0, "red", None, "x" * 300), (4, "Cargo", 30.25, "blue", None, None)]


def _write_docs(root: Path, docs: dict[str, dict[str, str]]) -> list[Path]:
    for folder, files in docs.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / name).write_text(text, encoding="utf-8")
    return [root / folder for folder in docs]


def _sqlite(path: Path, ddl: str, insert: str, rows: list[tuple[object, ...]]) -> SourceDatabase:
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
        conn.executemany(insert, rows)
    return SourceDatabase(path.stem, f"sqlite:///{path}")


def build_corpus(tmp_path: Path, url: str) -> tuple[Catalog, int, datetime]:
    """Two ingest rounds into `default` (and one into `other`); returns the catalog, the collection id and a
    time between the rounds."""
    settings = Settings(
        home=tmp_path / "home",
        catalog={"url": url},
        embedding={"model": "hashing", "hashing_dimension": 32},
        chunking={"size_tokens": 24, "overlap_tokens": 4},
    )
    settings.home.mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    indexer = Indexer(settings, catalog, HashingEmbedder(32))
    folders = _write_docs(tmp_path, DOCS)
    shop = _sqlite(
        tmp_path / "shop.db",
        "CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, weight_kg REAL, color TEXT, photo BLOB, "
        "note TEXT)",
        "INSERT INTO bikes VALUES (?, ?, ?, ?, ?, ?)",
        BIKES,
    )
    named_bikes = _sqlite(  # the source is named "bikes": db://bikes/parts/... is not table bikes
        tmp_path / "bikes.db",
        "CREATE TABLE parts (id INTEGER PRIMARY KEY, color TEXT)",
        "INSERT INTO parts VALUES (?, ?)",
        [(1, "red")],
    )
    fleet = _sqlite(
        tmp_path / "fleet.db",
        "CREATE TABLE BIKES (id INTEGER PRIMARY KEY, color TEXT)",
        "INSERT INTO BIKES VALUES (?, ?)",
        [(1, "red"), (2, "green")],
    )
    indexer.ingest_paths(folders, "default")
    indexer.ingest_tables(shop, ["bikes"], "default")
    indexer.ingest_tables(named_bikes, ["parts"], "default")
    indexer.ingest_paths(folders[:1], "other")
    indexer.ingest_tables(shop, ["bikes"], "other")
    time.sleep(1.1 if url.startswith("mysql") else 0.05)  # MariaDB DATETIME keeps whole seconds
    cut = utcnow()
    time.sleep(1.1 if url.startswith("mysql") else 0.05)
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("UPDATE bikes SET name = 'Trail 30' WHERE id = 1")  # re-ingested after the cut
    (tmp_path / "docs" / "f.md").write_text("# Zeta\n\nadded later\n", encoding="utf-8")
    indexer.ingest_paths(folders[:1], "default")
    indexer.ingest_tables(shop, ["bikes"], "default")
    indexer.ingest_tables(fleet, ["BIKES"], "default")
    for db in (shop, named_bikes, fleet):
        db.close()
    collection = catalog.require_collection("default").id
    return catalog, collection, cut


def _passes(kind: str, source: str, at: datetime, fields: dict[str, str] | None, w: SearchFilter) -> bool:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    parts = source.split("/")  # db://SOURCE/TABLE/key -> ['db:', '', SOURCE, TABLE, key]
    return (
        (w.kind is None or kind == w.kind)
        and (w.source_prefix is None or source.startswith(w.source_prefix))
        and (w.table is None or (kind == "row" and parts[3] == w.table))
        and (w.ingested_after is None or at >= w.ingested_after)
        and (w.ingested_before is None or at < w.ingested_before)
        and all((fields or {}).get(key) == value for key, value in w.fields)
    )


def brute_force(catalog: Catalog, collection: int, where: SearchFilter) -> list[int]:
    """The ids that pass, filtered in Python over every chunk of the collection."""
    stmt = (
        select(ChunkRow.id, DocumentRow.kind, DocumentRow.source, DocumentRow.updated_at, DocumentRow.fields)
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .where(ChunkRow.collection_id == collection)
    )
    with catalog.transaction() as s:
        return sorted(row[0] for row in s.execute(stmt) if _passes(*row[1:], where))


def filters(root: Path, cut: datetime) -> dict[str, SearchFilter]:
    """Named filters over the corpus of `build_corpus`."""
    docs = f"{root}/docs"
    return {
        "none": SearchFilter(),
        "kind row": SearchFilter(kind="row"),
        "kind document": SearchFilter(kind="document"),
        "folder prefix": SearchFilter(source_prefix=f"{docs}/"),
        "prefix with _": SearchFilter(source_prefix=f"{docs}_"),
        "prefix docs (case)": SearchFilter(source_prefix=docs),
        "row prefix": SearchFilter(source_prefix="db://shop/"),
        "table bikes": SearchFilter(table="bikes"),
        "table BIKES": SearchFilter(table="BIKES"),
        "table wildcard": SearchFilter(table="bi_es"),
        "table parts": SearchFilter(table="parts"),
        "after cut": SearchFilter(ingested_after=cut),
        "before cut": SearchFilter(ingested_before=cut),
        "range": SearchFilter(ingested_after=cut - timedelta(days=1), ingested_before=cut),
        "color red": SearchFilter(fields=(("color", "red"),)),
        "color Red": SearchFilter(fields=(("color", "Red"),)),
        "two fields": SearchFilter(fields=(("color", "red"), ("weight_kg", "12.5"))),
        "long value": SearchFilter(fields=(("note", "x" * 256),)),
        "table and time": SearchFilter(table="bikes", ingested_after=cut),
        "all at once": SearchFilter(
            kind="row",
            source_prefix="db://",
            table="bikes",
            ingested_before=cut + timedelta(days=1),
            fields=(("color", "red"), ("name", "City")),
        ),
    }


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh catalog database of each dialect (the servers' ones skip when the server is absent)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    url: str = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")
    return url


def test_matching_chunk_ids_equals_a_brute_force_filter(tmp_path: Path, catalog_url: str) -> None:
    catalog, collection, cut = build_corpus(tmp_path, catalog_url)
    try:
        everything = brute_force(catalog, collection, SearchFilter())
        selective = 0
        for name, where in filters(tmp_path, cut).items():
            found = matching_chunk_ids(catalog, collection, where)
            assert found.dtype.name == "int64", name
            expected = brute_force(catalog, collection, where)
            assert found.tolist() == expected, name
            selective += 0 < len(expected) < len(everything)
        assert selective >= 12  # premise: most filters keep some chunks and drop others
        other = catalog.require_collection("other").id
        assert not set(everything) & set(matching_chunk_ids(catalog, other, SearchFilter()).tolist())
    finally:
        catalog.close()


def test_equal_filters_are_equal_and_hash_alike() -> None:
    one = SearchFilter.of(fields={"b": 2, "a": "x"}, ingested_after=datetime(2026, 1, 1))
    two = SearchFilter.of(
        fields=[("a", "x"), ("b", "2")],
        ingested_after=datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    )
    assert one == two and hash(one) == hash(two)
    assert one is not None and one.ingested_after == datetime(2026, 1, 1, tzinfo=UTC)  # naive means UTC
    assert SearchFilter.of() is None and SearchFilter.of(fields={}) is None and SearchFilter().is_empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "file"}, "kind must be 'document' or 'row'"),
        ({"kind": "document", "table": "bikes"}, "match database rows only"),
        ({"kind": "document", "fields": {"color": "red"}}, "match database rows only"),
        ({"table": "a/b"}, "contains '/'"),
        ({"table": ""}, "table must be 1 to"),
        ({"source_prefix": "x" * 2049}, "source_prefix must be 1 to 2048"),
        ({"ingested_after": datetime(2026, 2, 1), "ingested_before": datetime(2026, 1, 1)}, "swap them"),
        ({"fields": {f"c{i}": "v" for i in range(17)}}, "at most 16 fields"),
        ({"fields": {'say"hi': "v"}}, "without quotes"),
        ({"fields": {"k" * 65: "v"}}, "1 to 64 characters"),
        ({"fields": {"color": "r" * 257}}, "at most 256 characters"),
        ({"fields": {"color": ["red"]}}, "text, a number or a boolean"),
        ({"fields": [("color", "red"), ("color", "blue")]}, "given twice"),
    ],
)
def test_a_filter_that_cannot_be_right_says_what_to_change(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        SearchFilter.of(**kwargs)  # type: ignore[arg-type]


def test_row_fields_keep_filterable_scalars_only() -> None:
    row = {"id": 3, "name": "Trail  29", "photo": b"\x00", "note": None, "spec": {"a": 1}, "long": "x" * 257}
    assert row_fields(row) == {"id": "3", "name": "Trail 29"}
    wide = {f"c{i}": i for i in range(100)}
    assert list(row_fields(wide)) == [f"c{i}" for i in range(ROW_FIELDS_MAX)]
    assert row_fields({'say"hi': 1, "k" * 65: 2, "ok": 3}) == {"ok": "3"}
