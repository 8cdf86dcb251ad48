"""The `almanac` command line over a temporary ALMANAC_HOME (hashing embedder, no model load)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from almanac.cli.main import main
from tests.indexer.corpus import write_corpus


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALMANAC_EMBEDDING__MODEL", "hashing")


def test_ingest_search_status_check_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_corpus(tmp_path / "docs", 3)
    assert main(["ingest", str(tmp_path / "docs"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 3
    assert main(["search", "Topic1 subject1", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["source"] == str(paths[1].resolve())
    assert set(hits[0]) == {"text", "source", "locator", "score", "kind"}
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["collections"][0]
    assert (status["name"], status["documents"]) == ("default", 3)
    assert main(["check"]) == 0 and "default: ok" in capsys.readouterr().out
    assert main(["delete", str(paths[0])]) == 0
    assert "removed 1" in capsys.readouterr().out
    main(["status", "--json"])
    assert json.loads(capsys.readouterr().out)["collections"][0]["documents"] == 2


def test_failures_set_the_exit_status_and_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(tmp_path / "docs", 1)
    (tmp_path / "docs" / "bad.pdf").write_bytes(b"not a pdf")
    assert main(["ingest", str(tmp_path / "docs")]) == 1
    out = capsys.readouterr().out
    assert "added 1" in out and "failed: " in out and "bad.pdf" in out


def test_errors_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "anything", "--collection", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no collection 'nope'") and "almanac ingest" in err and "\n" not in err


def test_ingest_db_names_unknown_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    db = tmp_path / "s.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO bikes VALUES (1, 'Trail')")
    code = main(["ingest-db", f"sqlite:///{db}", "--table", "bikes", "--table", "ghosts"])
    out = capsys.readouterr().out
    assert code == 1 and "added 1" in out and "ghosts" in out


def test_search_shows_rows_as_they_are_now_like_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, color TEXT)")
        rows = [(1, "Trail 29", "green"), (2, "Racer", "red")]
        conn.executemany("INSERT INTO bikes VALUES (?, ?, ?)", rows)
    assert main(["ingest-db", f"sqlite:///{db}", "--table", "bikes", "--name", "shop"]) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE bikes SET color = 'orange' WHERE id = 1")
        conn.execute("DELETE FROM bikes WHERE id = 2")
    assert main(["search", "Trail 29 bike color", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["source"] for h in hits] == ["db://shop/bikes/id=1"]  # the deleted row is gone
    assert "color: orange" in hits[0]["text"]


def _shop_and_docs(tmp_path: Path) -> list[Path]:
    """Ingest three documents and the tables `bikes` and `stores` (source `shop`) into `default`."""
    paths = write_corpus(tmp_path / "docs", 3)
    assert main(["ingest", str(tmp_path / "docs")]) == 0
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, weight_kg REAL, color TEXT)")
        conn.executemany(
            "INSERT INTO bikes VALUES (?, ?, ?, ?)",
            [(1, "Trail 29", 12.5, "green"), (2, "Racer", 7.9, "red"), (3, "Photo", None, "red")],
        )
        conn.execute("CREATE TABLE stores (id INTEGER PRIMARY KEY, city TEXT, color TEXT)")
        conn.execute("INSERT INTO stores VALUES (1, 'Vell', 'red')")
    assert main(["ingest-db", f"sqlite:///{db}", "-t", "bikes", "-t", "stores", "--name", "shop"]) == 0
    return paths


def _sources(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["search", "Topic1 bike red store", "-k", "20", "--json", *args]) == 0
    return sorted(
        {hit["source"] for hit in json.loads(capsys.readouterr().out)}
    )  # a document has many chunks


def test_search_filters_by_table_kind_columns_prefix_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _shop_and_docs(tmp_path)
    docs = sorted(str(p.resolve()) for p in paths)
    bikes = [f"db://shop/bikes/id={i}" for i in (1, 2, 3)]
    assert _sources(capsys, "--table", "bikes") == bikes
    assert _sources(capsys, "--where", "color=red") == [
        "db://shop/bikes/id=2",
        "db://shop/bikes/id=3",
        "db://shop/stores/id=1",
    ]
    assert _sources(capsys, "--table", "bikes", "--where", "color=red", "--where", "weight_kg=7.9") == [
        bikes[1]
    ]
    assert _sources(capsys, "--kind", "document") == docs
    monkeypatch.chdir(tmp_path)
    assert _sources(capsys, "--source-prefix", "docs/") == docs  # a relative folder is resolved here
    assert _sources(capsys, "--source-prefix", "db://shop/stores/") == ["db://shop/stores/id=1"]
    assert _sources(capsys, "--since", "2000-01-01", "--until", "2999-01-01T00:00Z", "--kind", "row") == [
        *bikes,
        "db://shop/stores/id=1",
    ]
    assert _sources(capsys, "--since", "2999-01-01") == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--where", "colorred"], "--where takes KEY=VALUE"),
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "swap them"),
        (["--kind", "document", "--table", "bikes"], "match database rows only"),
        (["--where", "color=red", "--where", "color=blue"], "given twice"),
    ],
)
def test_a_bad_search_filter_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    write_corpus(tmp_path / "docs", 1)
    assert main(["ingest", str(tmp_path / "docs")]) == 0
    capsys.readouterr()
    assert main(["search", "anything", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err


def test_ingest_db_stores_each_rows_column_values_for_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import select

    from almanac.core.catalog import Catalog
    from almanac.core.catalog_schema import DocumentRow
    from almanac.core.settings import Settings

    _shop_and_docs(tmp_path)
    catalog = Catalog(Settings().catalog_url)  # ALMANAC_HOME from the autouse fixture
    try:
        with catalog.transaction() as s:
            fields = {d.source: d.fields for d in s.scalars(select(DocumentRow))}
    finally:
        catalog.close()
    assert fields["db://shop/bikes/id=1"] == {
        "id": "1",
        "name": "Trail 29",
        "weight_kg": "12.5",
        "color": "green",
    }
    assert fields["db://shop/bikes/id=3"] == {"id": "3", "name": "Photo", "color": "red"}  # null: no field
    assert fields["db://shop/stores/id=1"] == {"id": "1", "city": "Vell", "color": "red"}
    assert all(value is None for source, value in fields.items() if not source.startswith("db://"))


def test_compact_merges_every_segment_and_check_then_reports_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALMANAC_INGEST__COMMIT_CHUNKS", "2")  # several commits, several segments
    write_corpus(tmp_path / "docs", 4)
    assert main(["ingest", str(tmp_path / "docs")]) == 0
    segments = list((tmp_path / "home" / "index" / "default").glob("s*.npz"))
    assert len(segments) > 1
    victim = max(segments)  # an altered file: check reports it, compact repairs it from the catalog
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    capsys.readouterr()
    assert main(["check"]) == 1 and "almanac compact" in capsys.readouterr().out
    assert main(["compact"]) == 0
    assert "one segment" in capsys.readouterr().out
    assert len(list((tmp_path / "home" / "index" / "default").glob("s*.npz"))) <= len(segments) + 1
    assert main(["check"]) == 0 and "default: ok" in capsys.readouterr().out
    assert main(["search", "Topic2 subject2", "-k", "1", "--json"]) == 0
    assert "doc2" in json.loads(capsys.readouterr().out)[0]["source"]
    assert main(["compact", "--collection", "nope"]) == 2
