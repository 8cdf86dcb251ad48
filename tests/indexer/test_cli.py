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
