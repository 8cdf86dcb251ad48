"""`almanac backup` / `almanac restore`: a snapshot that restores into a home `almanac check` agrees with."""

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


def _home_with_data(tmp_path: Path) -> Path:
    """Two collections, several versions each, and an adapter folder (with a hidden lock to skip)."""
    write_corpus(tmp_path / "docs", 3)
    assert main(["ingest", str(tmp_path / "docs")]) == 0
    assert main(["ingest", str(tmp_path / "docs"), "--collection", "other"]) == 0
    write_corpus(tmp_path / "more", 2)
    assert main(["ingest", str(tmp_path / "more")]) == 0
    adapter = tmp_path / "home" / "adapters" / "docs-v1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    (adapter / "manifest.json").write_text("{}")
    (tmp_path / "home" / "adapters" / ".registry.json.lock").write_text("")
    (tmp_path / "home" / "models").mkdir()
    (tmp_path / "home" / "models" / "big.bin").write_bytes(b"cache")
    return tmp_path / "home"


def test_backup_then_restore_into_a_new_home_passes_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_with_data(tmp_path)
    capsys.readouterr()
    assert main(["backup", str(tmp_path / "bk")]) == 0
    assert "backup in" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "catalog.db" in paths and "adapters/docs-v1/adapter_model.safetensors" in paths
    assert not any(p.startswith("models/") or "/." in p for p in paths)
    assert set(manifest["versions"]) == {"default", "other"}
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "restored"))
    assert main(["restore", str(tmp_path / "bk")]) == 0
    out = capsys.readouterr().out
    assert "default: ok" in out and "other: ok" in out
    assert main(["search", "Topic1 subject1", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source"].endswith("doc1.md")
    assert (tmp_path / "restored" / "adapters" / "docs-v1" / "manifest.json").is_file()


def test_backup_copies_only_the_segments_its_catalog_snapshot_records(tmp_path: Path) -> None:
    home = _home_with_data(tmp_path)
    (home / "index" / "default" / "s99999999.npz").write_bytes(b"a segment no version records")
    assert main(["backup", str(tmp_path / "bk")]) == 0
    db = sqlite3.connect(tmp_path / "bk" / "catalog.db")
    live = {
        f"index/{c}/{n}"
        for c, n in db.execute(
            "SELECT c.name, s.name FROM index_segments s JOIN collections c ON c.id = s.collection_id "
            "WHERE s.dropped_version IS NULL"
        )
    }
    db.close()
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"] if f["path"].startswith("index/")} == live


def test_a_damaged_backup_is_refused_before_the_home_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_with_data(tmp_path)
    assert main(["backup", str(tmp_path / "bk")]) == 0
    segment = next((tmp_path / "bk" / "index" / "default").iterdir())
    segment.write_bytes(segment.read_bytes()[:-1])
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "restored"))
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "bk")]) == 2
    assert "sha256 differs" in capsys.readouterr().err
    assert not (tmp_path / "restored" / "catalog.db").exists()


def test_refusals_a_non_empty_destination_and_a_non_empty_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_with_data(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    capsys.readouterr()
    assert main(["backup", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "bk")]) == 0
    assert main(["restore", str(tmp_path / "bk")]) == 2  # the live home itself
    assert "--force" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "bk"), "--force"]) == 0
    assert "default: ok" in capsys.readouterr().out


def test_a_catalog_in_another_database_is_left_to_its_own_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_with_data(tmp_path)
    elsewhere = tmp_path / "home" / "catalog.db"
    # a SQLAlchemy URL the backup treats as "not a file it can snapshot": an in-memory SQLite stands in
    monkeypatch.setenv("ALMANAC_CATALOG__URL", "sqlite://")
    capsys.readouterr()
    assert main(["backup", str(tmp_path / "bk")]) == 0
    assert "pg_dump" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert manifest["catalog"].startswith("external") and elsewhere.exists()


def test_writes_after_the_catalog_snapshot_do_not_leak_into_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A commit and a compaction land between the catalog snapshot and the file copies (as a running
    server's writer may): the dropped segments are still on disk, the backup is the snapshot's state."""
    from almanac.cli import home_backup

    _home_with_data(tmp_path)
    snapshot = home_backup._copy_sqlite
    write_corpus(tmp_path / "late", 1)
    (tmp_path / "late" / "doc0.md").write_text(
        "# Late\n\nZeppelin hangar notes written after the snapshot.\n"
    )

    def snapshot_then_write(source: Path, target: Path) -> None:
        snapshot(source, target)
        assert main(["ingest", str(tmp_path / "late")]) == 0
        assert main(["compact"]) == 0

    monkeypatch.setattr(home_backup, "_copy_sqlite", snapshot_then_write)
    assert main(["backup", str(tmp_path / "bk")]) == 0
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "restored"))
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "bk")]) == 0
    assert "default: ok" in capsys.readouterr().out
    assert main(["search", "Zeppelin hangar", "-k", "5", "--json"]) == 0
    assert not any("late" in hit["source"] for hit in json.loads(capsys.readouterr().out))
